"""The classifier against truths known in closed form.

For J(w) = (w - 2)^2 + 1 (curvature 2), gradient descent maps the error
e = w - 2 to (1 - 2·lr)·e, and heavy ball with momentum β converges iff
0 < lr·2 < 2 + 2β.
"""

import math

import numpy as np
import pytest

import dynamics
from dynamics import Regime
from dynamics.config import load_config
from dynamics.engine import path

CONVERGED, OSCILLATING, DIVERGED, STALLED = (
    Regime.CONVERGED,
    Regime.OSCILLATING,
    Regime.DIVERGED,
    Regime.STALLED,
)


def sweep(seed, dtype="float32", **axes):
    seed["dtype"] = dtype
    seed["sweep"] = axes
    return dynamics.run(seed)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradient_descent_regimes_follow_the_curvature(seed, dtype):
    rates = np.linspace(0.02, 1.4, 70)  # steps of 0.02: 0.5 and 1.0 are on it
    starts = [-2.0, 0.0, 1.5, 3.0, 6.0]
    ds = sweep(
        seed, dtype, **{"optimizer.learning_rate": rates.tolist(), "start.w": starts}
    )
    regime = ds["regime"].values
    overshoot = ds["overshoot"].values
    for i, lr in enumerate(rates):
        if lr < 0.5 - 1e-9:
            assert (regime[i] == CONVERGED).all() and not overshoot[i].any(), lr
        elif 0.5 + 1e-9 < lr < 1 - 1e-9:
            assert (regime[i] == CONVERGED).all() and overshoot[i].all(), lr
        elif abs(lr - 1.0) < 1e-9:
            assert (regime[i] == OSCILLATING).all(), lr
            assert (ds["period"].values[i] == 2).all()
        elif lr > 1:
            assert (regime[i] == DIVERGED).all(), lr
    converged = regime == CONVERGED
    assert (ds["period"].values[converged] == 1).all()


def test_learning_rate_one_cycles_between_zero_and_four(seed):
    seed["optimizer"]["learning_rate"] = 1.0
    trajectory = path(load_config(seed), steps=6).params["w"]
    np.testing.assert_array_equal(trajectory, [0, 4, 0, 4, 0, 4, 0])
    ds = dynamics.run(seed)
    assert int(ds["regime"]) == OSCILLATING and int(ds["period"]) == 2


def test_boundaries_are_exact_just_either_side_of_one(seed):
    ds = sweep(
        seed, "float32", **{"optimizer.learning_rate": [0.996, 0.999, 1.001, 1.004]}
    )
    assert ds["regime"].values.tolist() == [CONVERGED, CONVERGED, DIVERGED, DIVERGED]


def test_start_at_the_minimum_converges_for_every_learning_rate(seed):
    ds = sweep(
        seed,
        **{
            "optimizer.learning_rate": [0.0, 0.3, 0.7, 1.0, 1.5, 50.0],
            "start.w": [2.0],
        },
    )
    assert (ds["regime"].values == CONVERGED).all()
    assert (ds["steps_to_converge"].values == 0).all()


def test_heavy_ball_converges_iff_lr_below_one_plus_beta(seed):
    seed["optimizer"]["momentum"] = 0.0
    seed["steps"] = 400
    rates = np.linspace(0.05, 2.2, 44)
    momenta = [0.0, 0.3, 0.6, 0.9]
    ds = sweep(
        seed,
        "float64",
        **{
            "optimizer.learning_rate": rates.tolist(),
            "optimizer.momentum": momenta,
            "start.w": [-1.0, 0.5, 5.0],
        },
    )
    cell = rates[1] - rates[0]
    for j, beta in enumerate(momenta):
        boundary = 1 + beta
        for i, lr in enumerate(rates):
            row = ds["regime"].values[i, j]
            if lr < boundary - cell:
                assert (row == CONVERGED).all(), (beta, lr, row)
            elif lr > boundary + cell:
                assert (row == DIVERGED).all(), (beta, lr, row)


def test_steps_to_converge_matches_the_closed_form(seed):
    rates = [0.05, 0.1, 0.25, 0.4, 0.6, 0.75, 0.9]
    ds = sweep(seed, "float64", **{"optimizer.learning_rate": rates})
    rtol = 1e-4  # the default classify.rtol: |J'(w_t)| <= rtol · |J'(w_0)|
    for lr, got in zip(rates, ds["steps_to_converge"].values, strict=True):
        factor = abs(1 - 2 * lr)
        expected = math.ceil(math.log(rtol) / math.log(factor))
        if expected > 200:
            expected = -1
        assert got == expected, (lr, got, expected)


def test_slow_geometric_convergence_is_converged_before_reaching_tolerance(seed):
    ds = sweep(seed, **{"optimizer.learning_rate": [0.01]})
    assert int(ds["regime"][0]) == CONVERGED
    assert int(ds["steps_to_converge"][0]) == -1


def test_geometric_growth_is_diverged_before_anything_overflows(seed):
    ds = sweep(seed, **{"optimizer.learning_rate": [1.01]})
    assert np.isfinite(ds["final_loss"].values).all()
    assert int(ds["regime"][0]) == DIVERGED
    assert int(ds["diverged_at"][0]) == -1


def test_loss_going_to_inf_then_nan_is_diverged_not_oscillating(seed):
    ds = sweep(seed, **{"optimizer.learning_rate": [5.0, 1e10]})
    assert (ds["regime"].values == DIVERGED).all()
    assert np.isinf(ds["max_loss"].values).all()
    assert np.isnan(ds["final_loss"].values).all()
    # |w_t - 2| = 2·9^t, and (w - 2)^2 overflows float32 once it passes 1.8e19.
    first = math.ceil(math.log(math.sqrt(np.finfo(np.float32).max) / 2) / math.log(9))
    assert int(ds["diverged_at"][0]) == first


def test_nan_without_inf_is_diverged():
    ds = dynamics.run(
        {
            "objective": {"expr": "sqrt(w)"},
            "start": {"w": 1.0},
            "optimizer": {"learning_rate": 4.0},
            "steps": 50,
        }
    )
    assert int(ds["regime"]) == DIVERGED
    assert int(ds["diverged_at"]) == 1  # w_1 = 1 - 4·0.5 = -1, sqrt(-1) = nan


def test_zero_learning_rate_is_stalled_not_converged(seed):
    ds = sweep(seed, **{"optimizer.learning_rate": [0.0, 1e-9]})
    assert (ds["regime"].values == STALLED).all()


def test_two_dimensional_cycle_has_the_period_of_its_slowest_coordinate():
    # lr = 2 flips x between 1 and -1 (curvature 1); y (curvature 1/2) lands on
    # its minimum in one step. Period 2 overall.
    ds = dynamics.run(
        {
            "objective": {"expr": "x**2 / 2 + (y - 1)**2 / 4"},
            "start": {"x": 1.0, "y": 0.0},
            "optimizer": {"learning_rate": 2.0},
            "steps": 64,
        }
    )
    assert int(ds["regime"]) == OSCILLATING and int(ds["period"]) == 2


def test_multidimensional_rosenbrock_like_valley_converges():
    ds = dynamics.run(
        {
            "objective": {"expr": "(x - 1)**2 + 10 * (y - x)**2"},
            "start": {"x": -1.0, "y": 2.0},
            "optimizer": {"learning_rate": 0.02},
            "steps": 2000,
            "dtype": "float64",
        }
    )
    assert int(ds["regime"]) == CONVERGED
    assert float(ds["final_loss"]) < 1e-12


@pytest.mark.parametrize("dtype, steps", [("float32", 500), ("float64", 5000)])
def test_long_runs_that_end_hopping_between_neighbouring_floats_are_converged(
    seed, dtype, steps
):
    # Near lr = 1 the float map can end in a cycle of a few ulps around w = 2;
    # the run is within tolerance, so it has converged.
    seed["steps"] = steps
    rates = np.linspace(0.95, 0.995, 10)
    ds = sweep(
        seed,
        dtype,
        **{"optimizer.learning_rate": rates.tolist(), "start.w": [-2.0, 0.0, 5.0]},
    )
    assert (ds["regime"].values == CONVERGED).all()


def test_starts_near_the_minimum_held_in_a_rounding_cycle_are_converged(seed):
    # From a start near w = 2 the largest gradient is small, so the ulp-wide
    # cycle that float32 rounding holds the run in (up to half an ulp over
    # 1 − |1 − 2·lr| ulps: a dozen at lr = 0.98) stays above the relative
    # tolerance. The contraction rate (the Lyapunov exponent) shows the
    # cycle is rounding; these used to be called period 2.
    seed["steps"] = 2000
    rates = np.linspace(0.976, 0.996, 6)
    starts = [1.988, 1.99, 1.995, 2.005, 2.012]
    ds = sweep(seed, **{"optimizer.learning_rate": rates.tolist(), "start.w": starts})
    assert (ds["regime"].values == CONVERGED).all()
    assert (ds["period"].values == 1).all()
    # A true cycle of the same size is not rounding: lr = 1 exactly hops
    # between 2 ± 0.01 for ever, with a zero exponent.
    cycle = sweep(seed, **{"optimizer.learning_rate": [1.0], "start.w": [1.99]})
    assert int(cycle["regime"][0, 0]) == OSCILLATING
    assert int(cycle["period"][0, 0]) == 2


def test_heavy_ball_boundary_holds_for_long_runs(seed):
    seed["optimizer"]["momentum"] = 0.9
    seed["steps"] = 2000
    rates = np.linspace(0.05, 2.2, 44)
    ds = sweep(
        seed,
        "float64",
        **{"optimizer.learning_rate": rates.tolist(), "start.w": [-1.0, 0.5, 5.0]},
    )
    for lr, row in zip(rates, ds["regime"].values, strict=True):
        if lr < 1.9 - 0.05:
            assert (row == CONVERGED).all(), (lr, row)
        elif lr > 1.9 + 0.05:
            assert (row == DIVERGED).all(), (lr, row)


def test_overshoot_is_seen_when_the_minimum_is_at_zero():
    # On ½λw² the steps shrink towards 0 and their product underflows float32;
    # the zig-zag must still be seen: lr·λ in (1, 2) overshoots, below does not.
    rates = np.linspace(0.01, 0.49, 49)
    ds = dynamics.run(
        {
            "objective": {"name": "quadratic", "curvature": 4.0},
            "optimizer": {"learning_rate": 0.1},
            "sweep": {"optimizer.learning_rate": rates.tolist()},
        }
    )
    assert (ds["regime"].values == CONVERGED).all()
    np.testing.assert_array_equal(ds["overshoot"].values, rates * 4 > 1)


def test_a_coordinate_settling_onto_a_cycle_is_not_converged():
    # y cycles with period 2 under lr 0.27 while x's zig-zag shrinks slowly:
    # the steps level off instead of shrinking to zero.
    ds = dynamics.run(
        {
            "objective": {"expr": "x**2 + (y**2 - 1)**2"},
            "start": {"x": 1.0, "y": 0.5},
            "optimizer": {"learning_rate": [0.99, 0.27]},
            "steps": 200,
        }
    )
    assert int(ds["regime"]) == OSCILLATING


def test_a_spike_that_training_recovers_from_is_not_divergence():
    ds = dynamics.run(
        {
            "objective": {"name": "quadratic", "curvature": 4.0},
            "optimizer": {"name": "adam", "learning_rate": 0.1},
            "steps": 400,
            "sweep": {
                "optimizer.learning_rate": [1.0, 0.4125],
                "optimizer.b1": [0.27, 0.48],
            },
        }
    )
    small = ds["final_loss"].values < 1e-3 * ds["initial_loss"].values
    assert (ds["regime"].values[small] != DIVERGED).all()
