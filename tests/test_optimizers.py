"""Optimizers: optax's own steps, stability regions in closed form, one compile."""

import jax
import numpy as np
import optax
import pytest

import dynamics
from dynamics import Regime, engine
from dynamics.config import load_config
from dynamics.optimizers import OPTIMIZERS, SCHEDULES

from .test_engine import count_compilations

CURVATURES = [0.5, 1.0, 2.0, 5.0, 10.0]
MOMENTA = [0.0, 0.3, 0.6, 0.9]


def region_map(curvature, nesterov):
    """Regimes of heavy ball (or Nesterov) on ½λw², over lr × β, lr scaled by λ."""
    rates = np.linspace(0.02, 6.0, 100) / curvature
    config = {
        "objective": {"name": "quadratic", "curvature": curvature},
        "start": {"w": 1.0},
        "optimizer": {
            "name": "sgd",
            "learning_rate": 0.1,
            "momentum": 0.5,
            "nesterov": nesterov,
        },
        "steps": 1000,
        "dtype": "float64",
        # The curvature is swept over one value, so every curvature runs the
        # same compiled program.
        "sweep": {
            "optimizer.learning_rate": rates.tolist(),
            "optimizer.momentum": MOMENTA,
            "objective.curvature": [curvature],
        },
    }
    # The engine alone: dynamics.run also checks the closed form, whose
    # numerical Hessian checks compile per curvature.
    exp = dynamics.load_config(config)
    return rates, engine.simulate(exp)["regime"].reshape(exp.shape)[..., 0]


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_regions_match_the_closed_form(nesterov):
    with count_compilations() as compiled:
        for curvature in CURVATURES:
            rates, regime = region_map(curvature, nesterov)
            cell = rates[1] - rates[0]
            for j, beta in enumerate(MOMENTA):
                # Heavy ball: 0 < lr·λ < 2 + 2β. Nesterov (optax): 0 < lr·λ <
                # (2 + 2β) / (1 + 2β).
                edge = (2 + 2 * beta) / ((1 + 2 * beta) if nesterov else 1)
                boundary = edge / curvature
                below, above = rates < boundary - cell, rates > boundary + cell
                assert (regime[below, j] == Regime.CONVERGED).all(), (curvature, beta)
                assert (regime[above, j] == Regime.DIVERGED).all(), (curvature, beta)
    assert len(compiled) <= 1  # one program for every curvature


def _optax_path(opt, loss, params, steps):
    state = opt.init(params)
    history = [params]
    for _ in range(steps):
        grads = jax.grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        history.append(params)
    return history


def _rosenbrock(p):
    return (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_single_run_takes_exactly_optaxs_steps(name):
    # The same update rule to float64 rounding: our scan is one compiled
    # program and optax's loop here runs op by op, and XLA may fuse (and so
    # round) a few operations differently, in the last bit.
    config = {
        "objective": {"name": "rosenbrock"},
        "start": {"x": -0.5, "y": 0.5},
        "optimizer": {"name": name, "learning_rate": 1e-3},
        "dtype": "float64",
        "steps": 30,
    }
    got = engine.path(load_config(config), steps=30).params
    with jax.enable_x64(True):
        params = {"x": jax.numpy.float64(-0.5), "y": jax.numpy.float64(0.5)}
        # Hyperparameters in the run's dtype, as the engine passes them.
        numbers = {
            key: jax.numpy.float64(field.default)
            for key, field in OPTIMIZERS[name].hyperparameters.items()
            if field.kind == "number" and field.default is not None
        }
        opt = getattr(optax, name)(jax.numpy.float64(1e-3), **numbers)
        expected = _optax_path(opt, _rosenbrock, params, 30)
    for key in ("x", "y"):
        reference = [float(p[key]) for p in expected]
        np.testing.assert_allclose(got[key], reference, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizers_grid_compiles_once(name):
    numbers = [
        key
        for key, field in OPTIMIZERS[name].hyperparameters.items()
        if field.kind == "number" and field.default is not None
    ]
    sweep = {"optimizer.learning_rate": [1e-3, 1e-2, 1e-1]}
    if numbers:  # also sweep one of its own hyperparameters
        default = OPTIMIZERS[name].hyperparameters[numbers[0]].default
        # Two distinct values (a sweep takes each once), also for a default of 0.
        sweep[f"optimizer.{numbers[0]}"] = [default, default * 0.5 or 0.1]
    config = {
        "objective": {"name": "himmelblau"},
        "start": {"x": 1.0, "y": 1.0},
        "optimizer": {"name": name, "learning_rate": 1e-3},
        "steps": 16,
        "sweep": sweep,
    }
    exp = load_config(config)
    with count_compilations() as compiled:
        summary = engine.simulate(exp)
    assert len(compiled) == 1
    assert summary["regime"].shape == (exp.n_runs,)


def test_per_group_learning_rates_reach_their_groups():
    config = {
        "objective": {"expr": "(x - 1)**2 + (y - 2)**2"},
        "start": {"x": 0.0, "y": 0.0},
        "optimizer": {"name": "sgd", "learning_rate": [0.0, 0.25]},
        "dtype": "float64",
        "steps": 10,
    }
    path = engine.path(load_config(config)).params
    assert (path["x"] == 0.0).all()  # the first group has a zero rate
    np.testing.assert_allclose(path["y"], 2 - 2 * 0.5 ** np.arange(11))
    config["sweep"] = {"optimizer.learning_rate.0": [0.25, 1.5]}
    ds = dynamics.run(config)
    assert ds["regime"].values.tolist() == [Regime.CONVERGED, Regime.DIVERGED]


@pytest.mark.parametrize(
    "name, settings, reference",
    [
        (
            "warmup_cosine",
            {
                "warmup_steps": 5,
                "decay_steps": 30,
                "init_scale": 0.1,
                "end_scale": 0.01,
            },
            lambda peak: optax.warmup_cosine_decay_schedule(
                0.1 * peak, peak, 5, 30, 0.01 * peak
            ),
        ),
        (
            "exponential",
            {"decay_rate": 0.9, "transition_steps": 3},
            lambda peak: optax.exponential_decay(peak, 3, 0.9),
        ),
        ("constant", {}, lambda peak: optax.constant_schedule(peak)),
    ],
)
def test_schedules_match_optax_and_count_from_zero(name, settings, reference):
    peak = 0.05
    config = {
        "objective": {"expr": "w**2 / 2"},
        "start": {"w": 1.0},
        "optimizer": {
            "name": "sgd",
            "learning_rate": peak,
            "schedule": {"name": name, **settings},
        },
        "dtype": "float64",
        "steps": 40,
    }
    path = engine.path(load_config(config)).params["w"]
    with jax.enable_x64(True):
        rates = [float(reference(peak)(t)) for t in range(40)]
    expected = [1.0]
    for rate in rates:  # w ← w − α_t·w on w²/2
        expected.append(expected[-1] * (1 - float(rate)))
    np.testing.assert_allclose(path, expected, rtol=1e-12)
    assert set(SCHEDULES) >= {"constant", "warmup_cosine", "exponential"}


def test_schedule_settings_are_sweepable():
    config = {
        "objective": {"expr": "w**2 / 2"},
        "start": {"w": 1.0},
        "optimizer": {
            "name": "sgd",
            "learning_rate": 3.0,
            "schedule": {"name": "exponential", "decay_rate": 0.5},
        },
        "steps": 64,
        "sweep": {"optimizer.schedule.decay_rate": [0.5, 1.0]},
    }
    ds = dynamics.run(config)
    # lr 3 on curvature 1 diverges unless the schedule brings it below 2 soon.
    assert ds["regime"].values.tolist() == [Regime.CONVERGED, Regime.DIVERGED]


def test_hyperparameters_stay_in_the_runs_dtype():
    from dynamics import optimizers

    with jax.enable_x64(True):
        opt = optimizers.build(
            {"name": "adam", "learning_rate": 0.1, "b1": 0.9}, dtype=np.float32
        )
        params = jax.numpy.zeros(3, np.float32)
        updates, state = opt.update(jax.numpy.ones(3, np.float32), opt.init(params))
    assert updates.dtype == np.float32
    assert all(leaf.dtype in (np.float32, np.int32) for leaf in jax.tree.leaves(state))


@pytest.mark.parametrize(
    "optimizer, message",
    [
        ({"name": "adamm", "learning_rate": 0.1}, "did you mean 'adam'"),
        (
            {"name": "adam", "learning_rate": 0.1, "eps_rot": 0.9},
            "did you mean 'eps_root'",
        ),
        ({"name": "adam", "learning_rate": 0.1, "b1": 1.2}, "outside [0, 1)"),
        ({"name": "sgd", "learning_rate": [0.1, 0.2, 0.3]}, "3 learning rates for 1"),
        (
            {"name": "sgd", "learning_rate": 0.1, "schedule": {"name": "cosine"}},
            "warmup_cosine",
        ),
        (
            {"name": "sgd", "learning_rate": 0.1, "schedule": {"name": "exponential"}},
            "decay_rate: missing",
        ),
    ],
)
def test_bad_optimizers_are_refused_with_the_fix(optimizer, message):
    config = {
        "objective": {"expr": "w**2"},
        "start": {"w": 1.0},
        "optimizer": optimizer,
    }
    with pytest.raises(dynamics.ConfigError) as err:
        load_config(config)
    assert message in str(err.value)
