import os

import pytest

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
