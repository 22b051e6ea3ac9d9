"""Objectives from config: named functions, user callables, and their errors."""

import numpy as np
import pytest

import dynamics
from dynamics import Regime


def test_a_named_objective_is_a_config_away():
    ds = dynamics.run(
        {
            "objective": {"name": "quadratic", "curvature": 4.0},
            "start": {"w": 1.0},
            "optimizer": {"learning_rate": 0.1},
            "sweep": {
                "optimizer.learning_rate": [0.4, 0.6],
                "objective.curvature": [4.0, 2.0],
            },
        }
    )
    # Gradient descent on ½λw² is stable iff lr·λ < 2.
    assert ds["regime"].values.tolist() == [
        [Regime.CONVERGED, Regime.CONVERGED],
        [Regime.DIVERGED, Regime.CONVERGED],
    ]


def test_defaults_of_a_family_fill_the_config():
    exp = dynamics.load_config(
        {"objective": {"name": "rosenbrock"}, "optimizer": {"learning_rate": 1e-3}}
    )
    assert exp.config["objective"] == {"name": "rosenbrock", "a": 1.0, "b": 100.0}
    assert exp.config["start"] == {"x": -1.2, "y": 1.0}


def test_quadratic_from_a_spectrum_diverges_at_its_largest_eigenvalue():
    ds = dynamics.run(
        {
            "objective": {
                "name": "quadratic_nd",
                "spectrum": [0.5, 1.0, 4.0],
                "seed": 3,
            },
            "optimizer": {"learning_rate": 0.1},
            "steps": 400,
            "sweep": {"optimizer.learning_rate": [0.45, 0.55]},
        }
    )
    assert ds["regime"].values.tolist() == [Regime.CONVERGED, Regime.DIVERGED]


def test_a_user_callable_runs_from_the_working_folder(tmp_path, monkeypatch):
    (tmp_path / "mycost.py").write_text(
        "import jax.numpy as jnp\n\n"
        "def bowl(params):\n"
        "    return jnp.sum((params['w'] - 3.0) ** 2) + params['b'] ** 2\n"
    )
    monkeypatch.chdir(tmp_path)
    ds = dynamics.run(
        {
            "objective": {"callable": "mycost:bowl"},
            "start": {"w": [0.0, 1.0], "b": 2.0},
            "optimizer": {"learning_rate": 0.1},
            "dtype": "float64",
            "sweep": {"start.b": [2.0, -1.0]},
        }
    )
    assert (ds["regime"].values == Regime.CONVERGED).all()
    assert np.all(ds["final_loss"].values < 1e-12)


@pytest.mark.parametrize(
    "objective, message",
    [
        ({"name": "rosenbrok"}, "did you mean 'rosenbrock'"),
        ({"name": "rosenbrock", "c": 1.0}, "unknown key 'c'"),
        ({"name": "quartic", "scale": -1.0}, "must be positive"),
        ({"name": "quadratic_nd"}, "spectrum: missing"),
        ({"name": "quadratic", "expr": "w**2"}, "exactly one of"),
        ({"callable": "nosuchmodule:f"}, "cannot import 'nosuchmodule'"),
        ({"callable": "math"}, "package.module:function"),
        ({"callable": "math:nosuch"}, "has no function 'nosuch'"),
    ],
)
def test_bad_objectives_are_refused_with_the_fix(objective, message):
    config = {"objective": objective, "optimizer": {"learning_rate": 0.1}}
    if "callable" in objective:
        config["start"] = {"w": 1.0}
    with pytest.raises(dynamics.ConfigError) as err:
        dynamics.load_config(config)
    assert message in str(err.value)


def test_start_keys_of_a_family_are_checked():
    with pytest.raises(dynamics.ConfigError, match="unknown key 'z'; known keys: x, y"):
        dynamics.load_config(
            {
                "objective": {"name": "himmelblau"},
                "start": {"x": 0.0, "z": 1.0},
                "optimizer": {"learning_rate": 0.1},
            }
        )


def test_swept_objective_settings_are_checked_value_by_value():
    with pytest.raises(dynamics.ConfigError, match="objective.width.*must be positive"):
        dynamics.load_config(
            {
                "objective": {"name": "double_well"},
                "optimizer": {"learning_rate": 0.1},
                "sweep": {"objective.width": [1.0, -1.0]},
            }
        )
