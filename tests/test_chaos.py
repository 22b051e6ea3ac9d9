"""Periods, Lyapunov exponents, orbits and basins against closed forms.

Gradient descent on J(w) = w²/2 − w³/3 with learning rate η is the map
w ↦ (1 − η)w + ηw², which the change of variable w = 1 − (μ/η)x turns into the
logistic map x ↦ μx(1 − x) with μ = 1 + η. Its period-doubling cascade, its
period-3 window and its exponent ln 2 at μ = 4 are known exactly or tabulated
(Feigenbaum 1978; the thresholds below to six digits).
"""

import math

import numpy as np
import pytest

import dynamics
from dynamics import basins, engine
from dynamics.classify import Regime
from dynamics.config import load_config

# Where the logistic map's attracting cycle doubles: 2 → 4 at 1 + √6, then
# the tabulated 3.544090, 3.564407, 3.568759; chaos from 3.569946.
DOUBLINGS = [3.0, 1 + math.sqrt(6), 3.544090, 3.564407, 3.568759]
PERIOD_THREE = 1 + math.sqrt(8)  # the period-3 window opens here


def logistic(mu, steps=20000, window=512, orbit=None, dtype="float64"):
    mu = np.atleast_1d(mu)
    analysis = {"orbit": orbit} if orbit else {}
    return load_config(
        {
            "objective": {"expr": "w**2/2 - w**3/3"},
            "start": {"w": 0.3},
            "optimizer": {"name": "sgd", "learning_rate": 1.0},
            "steps": steps,
            "dtype": dtype,
            "classify": {"window": window},
            "analysis": analysis,
            "sweep": {"optimizer.learning_rate": (mu - 1).tolist()},
        }
    )


def test_the_period_doubling_cascade_switches_at_its_thresholds():
    # Just inside each interval between thresholds: the period is 2^k.
    below, above = np.array(DOUBLINGS[:-1]), np.array(DOUBLINGS[1:])
    inside = np.concatenate([[2.9], below + 0.2 * (above - below), [3.2, 3.5]])
    expected = [1, 2, 4, 8, 16, 2, 4]
    out = engine.simulate(logistic(inside))
    assert out["period"].tolist() == expected
    assert (out["regime"][1:] == Regime.OSCILLATING).all()
    assert out["regime"][0] == Regime.CONVERGED


@pytest.mark.parametrize("index", range(3))
def test_each_threshold_separates_the_two_periods(index):
    threshold = DOUBLINGS[index]
    gap = [0.02, 0.005, 0.0015][index]
    out = engine.simulate(logistic([threshold - gap, threshold + gap]))
    before = 1 if index == 0 else 2**index
    assert out["period"].tolist() == [before, 2 * before]


def test_the_period_three_window():
    out = engine.simulate(logistic([PERIOD_THREE - 0.01, PERIOD_THREE + 0.005]))
    assert out["period"][1] == 3 and out["lyapunov"][1] < 0
    assert out["chaotic"].tolist() == [True, False]


def test_the_exponent_is_ln2_at_mu_4_and_chaos_is_flagged():
    out = engine.simulate(logistic([4.0, 3.7, 3.2]))
    assert out["lyapunov"][0] == pytest.approx(math.log(2), abs=0.01)
    assert out["chaotic"].tolist() == [True, True, False]
    assert out["period"].tolist() == [0, 0, 2]


def test_a_cycles_exponent_is_the_log_of_its_multiplier():
    # The logistic 2-cycle has multiplier 4 + 2μ − μ² (per two steps).
    mu = np.array([3.1, 3.2, 3.3, 3.4])
    out = engine.simulate(logistic(mu))
    expected = np.log(np.abs(4 + 2 * mu - mu**2)) / 2
    np.testing.assert_allclose(out["lyapunov"], expected, atol=1e-6)


def test_the_orbit_holds_the_two_cycle():
    mu, eta = 3.2, 2.2
    out = engine.simulate(logistic(mu, steps=2000, window=64, orbit="w"))
    # The 2-cycle of x ↦ μx(1 − x), mapped back to w = 1 − (μ/η)x.
    root = math.sqrt((mu - 3) * (mu + 1))
    cycle = sorted(1 - mu / eta * (mu + 1 + s * root) / (2 * mu) for s in (-1, 1))
    orbit = out["orbit"][0]
    assert orbit.shape == (64,)
    np.testing.assert_allclose(sorted(orbit[-2:]), cycle, rtol=1e-9)
    np.testing.assert_allclose(orbit[::2], orbit[-2], rtol=1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_exponent_of_gradient_descent_on_a_quadratic_is_exact(seed, dtype):
    # Every step multiplies a perturbation by 1 − 2η: λ = ln|1 − 2η|.
    rates = [0.05, 0.2, 0.45, 0.7, 0.95, 1.0, 1.003]
    seed.update(dtype=dtype, steps=400)
    seed["sweep"] = {"optimizer.learning_rate": rates}
    out = engine.simulate(load_config(seed))
    expected = np.log(np.abs(1 - 2 * np.array(rates)))
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out["lyapunov"], expected, atol=tolerance)
    assert not out["chaotic"].any()


def test_the_exponent_is_minus_infinity_when_superstable(seed):
    seed["sweep"] = {"optimizer.learning_rate": [0.5]}
    assert engine.simulate(load_config(seed))["lyapunov"][0] == -np.inf


def test_heavy_ball_exponent_is_the_log_spectral_radius():
    # Heavy ball on curvature h: roots of z² − (1 + β − ηh)z + β; here complex,
    # so both have modulus √β and λ = ln √β.
    betas = [0.3, 0.6, 0.9]
    exp = load_config(
        {
            "objective": {"expr": "(w - 2)**2 + 1"},
            "start": {"w": 0.0},
            "optimizer": {"name": "sgd", "learning_rate": 0.5, "momentum": 0.5},
            "steps": 4000,
            "dtype": "float64",
            "sweep": {"optimizer.momentum": betas},
        }
    )
    out = engine.simulate(exp)
    np.testing.assert_allclose(out["lyapunov"], 0.5 * np.log(betas), atol=2e-3)


def test_many_parameters_give_the_slowest_contraction():
    spectrum = [0.5, 1.0, 3.0, 7.0]
    rates = [0.05, 0.2, 0.27]
    exp = load_config(
        {
            "objective": {"name": "quadratic_nd", "spectrum": spectrum},
            "optimizer": {"name": "sgd", "learning_rate": 0.1},
            "steps": 1000,
            "dtype": "float64",
            "sweep": {"optimizer.learning_rate": rates},
        }
    )
    out = engine.simulate(exp)
    expected = [max(np.log(abs(1 - r * h)) for h in spectrum) for r in rates]
    np.testing.assert_allclose(out["lyapunov"], expected, atol=1e-3)


def test_diverged_runs_have_no_exponent(seed):
    seed["sweep"] = {"optimizer.learning_rate": [3.0]}
    seed["steps"] = 400
    out = engine.simulate(load_config(seed))
    assert out["regime"][0] == Regime.DIVERGED and np.isnan(out["lyapunov"][0])


def test_the_lyapunov_exponent_can_be_switched_off(seed):
    seed["analysis"] = {"lyapunov": False}
    out = engine.simulate(load_config(seed))
    assert "lyapunov" not in out and "chaotic" not in out


# Basins.

HIMMELBLAU_MINIMA = [
    (-3.779310, -3.283186),
    (-2.805118, 3.131312),
    (3.0, 2.0),
    (3.584428, -1.848126),
]


def test_himmelblau_has_four_basins_at_its_four_minima():
    ds = dynamics.run(
        {
            "objective": {"name": "himmelblau"},
            "start": {"x": 0.0, "y": 0.0},
            "optimizer": {"name": "sgd", "learning_rate": 0.01},
            "steps": 400,
            "sweep": {
                "start.x": {"linspace": [-5, 5], "num": 41},
                "start.y": {"linspace": [-5, 5], "num": 41},
            },
        }
    )
    assert ds.sizes["minimum"] == 4
    np.testing.assert_allclose(
        ds["basin_minimum"].sel(parameter=["x", "y"]).values,
        HIMMELBLAU_MINIMA,
        atol=1e-3,
    )
    # A start next to each minimum lands in its basin.
    for index, (x, y) in enumerate(HIMMELBLAU_MINIMA):
        near = ds["basin"].sel({"start.x": x, "start.y": y}, method="nearest")
        assert int(near) == index
    assert (ds["basin"] >= 0).all()
    assert set(np.unique(ds["basin"])) == {0, 1, 2, 3}


def test_double_well_basins_split_at_the_hump():
    ds = dynamics.run(
        {
            "objective": {"name": "double_well", "width": 1.5},
            "start": {"w": 0.1},
            "optimizer": {"name": "sgd", "learning_rate": 0.01},
            "steps": 400,
            "sweep": {"start.w": [-3.0, -1.0, -0.2, 0.3, 1.0, 2.5]},
        }
    )
    np.testing.assert_allclose(
        ds["basin_minimum"].values.ravel(), [-1.5, 1.5], atol=1e-3
    )
    assert ds["basin"].values.tolist() == [0, 0, 0, 1, 1, 1]


def test_runs_that_do_not_converge_have_no_basin():
    ends = np.array([[1.0, 0.0], [np.nan, 0.0], [1.0, 0.0]])
    found = basins.assign(ends, np.array([True, False, False]), np.zeros(3))
    assert found.basin.tolist() == [0, -1, -1]


def test_too_many_minima_are_not_split_into_basins():
    # A 10 × 10 lattice of end points, each far from the others: 100 minima.
    lattice = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1) * 30
    ends = lattice.reshape(-1, 2)
    found = basins.assign(ends, np.ones(100, bool), np.zeros(100))
    assert found.continuum and (found.basin == -1).all()
    assert basins.assign(ends[:64], np.ones(64, bool), np.zeros(64)).basin.max() == 63


def test_basins_read_in_blocks_match_one_pass(monkeypatch):
    # Three minima, runs shuffled so that every block holds some of each, a
    # few unconverged and a few late (converged, not reached): blocks of 7
    # runs must give exactly the one-block answer.
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, -4.0]])
    which = rng.integers(0, 3, 200)
    ends = centres[which] + rng.normal(scale=1e-3, size=(200, 2))
    loss = rng.uniform(size=200) + which
    converged = rng.uniform(size=200) > 0.1
    reached = converged & (rng.uniform(size=200) > 0.2)
    whole = basins.assign(ends, converged, loss, reached=reached)
    monkeypatch.setattr(basins, "BLOCK", 7)
    blocks = basins.assign(ends, converged, loss, reached=reached)
    assert whole.basin.tolist() == blocks.basin.tolist()
    np.testing.assert_array_equal(whole.minima, blocks.minima)
    np.testing.assert_array_equal(whole.loss, blocks.loss)
    assert len(whole.minima) == 3 and (whole.basin[converged] >= 0).all()


def test_end_points_along_a_valley_chain_into_one_minimum():
    ends = np.stack([np.linspace(0, 1, 40), np.zeros(40)], axis=1)
    valley = basins.assign(ends, np.ones(40, bool), -ends[:, 0])
    assert len(valley.minima) == 1 and valley.minima[0, 0] == 1.0
    assert (valley.basin == 0).all()


def test_runs_that_have_not_reached_their_minimum_define_none(seed):
    # At lr = 0.9959 the run converges geometrically but after 200 steps it is
    # still far from w = 2: it must not make a second "minimum".
    seed["sweep"] = {"optimizer.learning_rate": [0.1, 0.3, 0.9959]}
    ds = dynamics.run(seed)
    assert ds["regime"].values.tolist() == [0, 0, 0]
    assert ds["steps_to_converge"].values[-1] == -1
    np.testing.assert_allclose(ds["basin_minimum"].values.ravel(), [2.0], atol=1e-5)
    assert ds["basin"].values.tolist() == [0, 0, -1]
