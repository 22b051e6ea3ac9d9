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


CALLABLES = {
    "branches": (
        "def f(p):\n    if p['a'][0] > 0:\n        return p['a'][0]\n    return 0.0\n",
        "failed when traced by JAX",
    ),
    "numpy": (
        "import numpy as np\ndef f(p):\n    return float(np.sum(p['a']))\n",
        "failed when traced by JAX",
    ),
    "missing": ("def f(p):\n    return p['zzz']\n", "KeyError"),
    "nothing": ("def f(p):\n    return None\n", "must be a real scalar"),
    "vector": ("def f(p):\n    return p['a'] ** 2\n", "of shape (2,)"),
    "integer": ("def f(p):\n    return 3\n", "must be a real scalar"),
}


@pytest.mark.parametrize("case", sorted(CALLABLES))
def test_a_broken_callable_is_refused_before_any_work(
    case, tmp_path, monkeypatch, capsys
):
    source, message = CALLABLES[case]
    (tmp_path / f"broken_{case}.py").write_text(source)
    (tmp_path / "exp.yaml").write_text(
        f"objective: {{callable: 'broken_{case}:f'}}\n"
        "start: {a: [1.0, 2.0]}\noptimizer: {learning_rate: 0.1}\n"
    )
    monkeypatch.chdir(tmp_path)
    from dynamics import cli

    assert cli.main(["run", "exp.yaml", "-o", "out"]) == 2
    err = capsys.readouterr().err
    assert "exp.yaml:1: objective.callable" in err and message in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "config, message",
    [
        (
            {"objective": {"model": "mlp", "width": 4}, "start": {"layer5": 0.3}},
            "the mlp has depth 2",
        ),
        (
            {"objective": {"model": "linear", "dim": 4, "batch_size": 1000}},
            "use a batch size of at most 20",
        ),
        (
            {
                "objective": {"model": "mlp", "width": 4},
                "sweep": {"objective.width": [2, 4]},
            },
            "fixed per config",
        ),
        (
            {
                "objective": {"model": "mlp", "width": 4},
                "optimizer": {"learning_rate": [0.1, 0.1]},
                "sweep": {"optimizer.learning_rate.5": [1.0]},
            },
            "no index 5",
        ),
        ({"objective": {"name": "quadratic", "curvature": 1e300}}, "does not fit"),
    ],
)
def test_what_only_the_objective_can_judge_is_still_a_config_error(config, message):
    config = {"optimizer": {"learning_rate": 0.1}, **config}
    with pytest.raises(dynamics.ConfigError) as err:
        dynamics.load_config(config)
    assert message in str(err.value)


def test_an_unknown_objective_does_not_also_ask_for_a_start():
    with pytest.raises(dynamics.ConfigError) as err:
        dynamics.load_config(
            {"objective": {"model": "mlpp"}, "optimizer": {"learning_rate": 0.1}}
        )
    assert len(err.value.problems) == 1
