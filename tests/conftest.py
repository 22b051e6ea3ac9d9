import os

import pytest
from hypothesis import HealthCheck, settings

# Every Hypothesis test here draws the same cases on every run, keeps no
# database and has no per-example deadline (a first example compiles); each
# sets only its own number of examples.
settings.register_profile(
    "dynamics",
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("dynamics")

os.environ.setdefault("MPLBACKEND", "Agg")
# Compile counts are asserted: programs must not come from an earlier run's
# cache (tests/test_devices.py checks the cache in processes of its own).
os.environ["DYNAMICS_COMPILATION_CACHE"] = "off"

SEED = {
    "name": "seed",
    "objective": {"expr": "(w - 2)**2 + 1"},
    "start": {"w": 0.0},
    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    "steps": 200,
}


@pytest.fixture
def seed():
    """The starting cost J(w) = (w - 2)^2 + 1 with plain gradient descent."""
    import copy

    return copy.deepcopy(SEED)
