"""The theory overlay: closed-form radii against optax, maps against the engine."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.contour import ContourSet

from dynamics import engine, figures, optimizers, theory
from dynamics.classify import Regime
from dynamics.config import load_config
from dynamics.results import to_dataset

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
COUPLED = [[2.0, 1.0], [1.0, 6.0]]  # the Hessian of x² + xy + 3y²


def config_file(name, *overrides):
    return load_config(CONFIGS / name, list(overrides))


def simulated(exp):
    return to_dataset(exp, engine.simulate(exp))


def optax_radius(spec, hessian):
    """The spectral radius of one optax step on ½wᵀHw, from its exact Jacobian.

    The step of the engine's own transformation, differentiated with respect to
    the parameters and the optimizer state together: no formula of ours.
    """
    hessian = jnp.asarray(hessian, jnp.float64)
    spec = {"momentum": None, "nesterov": False, **spec}
    opt = optimizers.build(spec, "float64")
    params = {"x": jnp.zeros((), jnp.float64), "y": jnp.zeros((), jnp.float64)}
    flat, unravel = ravel_pytree((params, opt.init(params)))

    def step(flat):
        params, state = unravel(flat)
        gradient = hessian @ jnp.stack([params["x"], params["y"]])
        updates, state = opt.update({"x": gradient[0], "y": gradient[1]}, state, params)
        return ravel_pytree((optax.apply_updates(params, updates), state))[0]

    jacobian = np.asarray(jax.jacfwd(step)(flat))
    return float(np.max(np.abs(np.linalg.eigvals(jacobian))))


# Exact radii.


def test_gradient_descent_radius_is_one_minus_step(seed):
    rates = [0.1, 0.25, 0.5, 0.75, 1.0, 1.2]
    seed.update(dtype="float64", sweep={"optimizer.learning_rate": rates})
    rho = theory.radius(load_config(seed))
    assert rho.tolist() == pytest.approx([abs(1 - 2 * r) for r in rates], abs=1e-15)
    assert theory.predicted(rho).tolist() == [0, 0, 0, 0, 1, 2]


def test_heavy_ball_complex_roots_have_radius_sqrt_beta():
    # Complex roots when (1 + β − 2η)² < 4β: the pairs below all are.
    pairs = [(0.5, 0.5), (0.25, 0.9), (1.0, 0.3), (1.2, 0.6)]
    for rate, beta in pairs:
        assert (1 + beta - 2 * rate) ** 2 < 4 * beta
    exp = load_config(
        {
            "objective": {"name": "quadratic", "curvature": 2.0},
            "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.5},
            "dtype": "float64",
            "sweep": {
                "optimizer.learning_rate": [rate for rate, _ in pairs],
                "optimizer.momentum": [beta for _, beta in pairs],
            },
        }
    )
    rho = theory.radius(exp)
    for i, (_, beta) in enumerate(pairs):
        assert rho[i, i] == pytest.approx(math.sqrt(beta), rel=1e-14)


def test_nesterov_at_hand_derived_points():
    # optax: m ← g + βm, w ← w − η(g + βm). With h = ηλ and a = 1 − h the roots
    # solve z² − (1 + β)a z + βa = 0. At β = ½, λ = 2:
    #   η = ¼: a = ½, z² − ¾z + ¼: complex, ρ = √¼ = ½;
    #   η = ¾: a = −½, z² + ¾z − ¼ = (z + 1)(z − ¼): ρ = 1, the boundary
    #          h = (2 + 2β)/(1 + 2β) = 3/2;
    #   η = 0.9: a = −0.8, z² + 1.2z − 0.4: ρ = (1.2 + √3.04)/2.
    exp = load_config(
        {
            "objective": {"name": "quadratic", "curvature": 2.0},
            "optimizer": {
                "name": "sgd",
                "learning_rate": 0.1,
                "momentum": 0.5,
                "nesterov": True,
            },
            "dtype": "float64",
            "sweep": {"optimizer.learning_rate": [0.25, 0.75, 0.9]},
        }
    )
    rho = theory.radius(exp)
    expected = [0.5, 1.0, (1.2 + math.sqrt(3.04)) / 2]
    assert rho.tolist() == pytest.approx(expected, rel=1e-14)
    assert theory.predicted(rho).tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "spec",
    [
        {"learning_rate": 0.3},
        {"learning_rate": 0.2, "momentum": 0.6},
        {"learning_rate": 0.45, "momentum": 0.6},
        {"learning_rate": 0.2, "momentum": 0.6, "nesterov": True},
        {"learning_rate": 0.26, "momentum": 0.9, "nesterov": True},
        {"learning_rate": [0.5, 0.2], "momentum": 0.6},
        {"learning_rate": [0.5, 0.2], "momentum": 0.6, "nesterov": True},
        {"learning_rate": [0.1, 0.45]},
    ],
)
def test_radius_is_that_of_the_optax_step(spec):
    spec = {"name": "sgd", **spec}
    exp = load_config(
        {
            "objective": {"expr": "x**2 + x*y + 3*y**2"},
            "start": {"x": 1.0, "y": 0.3},
            "optimizer": spec,
            "dtype": "float64",
        }
    )
    with jax.enable_x64(True):
        expected = optax_radius(spec, COUPLED)
    assert float(theory.radius(exp)) == pytest.approx(expected, rel=1e-12)


def test_a_start_at_the_minimum_excites_nothing(seed):
    seed.update(
        dtype="float64",
        sweep={"optimizer.learning_rate": [0.5, 1.5], "start.w": [0.0, 2.0, 3.0]},
    )
    rho = theory.radius(load_config(seed))
    assert rho.tolist() == [[0.0, 0.0, 0.0], [2.0, 0.0, 2.0]]

    spread = load_config(
        {
            "objective": {"name": "quadratic_nd", "spectrum": [1.0, 50.0]},
            "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.5},
            "sweep": {"start.w": [0.0, 1.0]},
        }
    )
    assert theory.radius(spread)[0] == 0.0
    assert theory.radius(spread)[1] > 1


def test_only_excited_modes_count():
    # x² + 3y² from x = 0: the x mode (curvature 2) is never excited and
    # stays exactly at rest, so only 1 − 6η counts; at η = 0.3 the x mode
    # alone would give 0.4 and the y mode gives 0.8.
    exp = load_config(
        {
            "objective": {"expr": "x**2 + 3*y**2"},
            "start": {"x": 0.0, "y": 1.0},
            "optimizer": {"name": "sgd", "learning_rate": 0.1},
            "dtype": "float64",
            "sweep": {"optimizer.learning_rate": [0.3, 0.9]},
        }
    )
    assert theory.radius(exp).tolist() == pytest.approx([0.8, 4.4], abs=1e-14)


def test_rounding_excites_an_unstable_mode_the_start_misses():
    # With learning rates 0.8 and 0.3 the preconditioned gradient P·g at
    # (1, −0.5) is 1.2 × the start itself, so only one mode of P^½HP^½ is
    # excited; the other (radius 1.2 here) grows from rounding and the run
    # diverges, as the theory then says.
    exp = load_config(
        {
            "objective": {"expr": "x**2 + x*y + 3*y**2"},
            "start": {"x": 1.0, "y": -0.5},
            "optimizer": {"name": "sgd", "learning_rate": [0.8, 0.3]},
            "dtype": "float64",
            "steps": 400,
        }
    )
    with jax.enable_x64(True):
        expected = optax_radius(exp.config["optimizer"], COUPLED)
    assert float(theory.radius(exp)) == pytest.approx(expected, rel=1e-12)
    assert expected > 1
    assert engine.simulate(exp)["regime"][0] == Regime.DIVERGED


def test_predicted_codes():
    rho = [0.0, 0.5, 1 - 1e-12, 1.0, 1 + 1e-12, 1 + 1e-6, 3.0]
    assert theory.predicted(rho).tolist() == [0, 0, 1, 1, 1, 2, 2]


def test_a_zero_learning_rate_is_predicted_stalled(seed):
    seed.update(sweep={"optimizer.learning_rate": [0.0, 0.5], "start.w": [0.0, 2.0]})
    exp = load_config(seed)
    assert theory.radius(exp).tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert theory.prediction(exp).tolist() == [[3, 0], [0, 0]]
    assert theory.agreement(simulated(exp), exp) == 1.0


# Agreement with the simulated maps.

MAPS = {
    "seed, gradient descent, float32": lambda: config_file(
        "seed_quadratic.yaml",
        "sweep.optimizer.learning_rate.num=48",
        "sweep.start.w.num=48",
    ),
    "seed with the minimum and lr = 1, float64": lambda: config_file(
        "seed_quadratic.yaml",
        "dtype=float64",
        "sweep.optimizer.learning_rate={linspace: [0.02, 1.2], num: 60}",
        "sweep.start.w={linspace: [-2.0, 6.0], num: 41}",
    ),
    "heavy ball, float32": lambda: config_file(
        "momentum_quadratic.yaml",
        "sweep.optimizer.learning_rate.num=48",
        "sweep.optimizer.momentum.num=48",
    ),
    "nesterov, float32": lambda: config_file(
        "nesterov_quadratic.yaml",
        "sweep.optimizer.learning_rate.num=48",
        "sweep.optimizer.momentum.num=48",
    ),
    "quadratic_nd, heavy ball, float64": lambda: load_config(
        {
            "name": "spread-heavy-ball",
            "objective": {"name": "quadratic_nd", "spectrum": [0.5, 2.0, 8.0, 30.0]},
            "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.5},
            "steps": 400,
            "dtype": "float64",
            "sweep": {
                "optimizer.learning_rate": {"logspace": [-3, -0.5], "num": 48},
                "optimizer.momentum": {"linspace": [0.0, 0.98], "num": 48},
            },
        }
    ),
    "per-group rates, coupled, float32": lambda: load_config(
        {
            "name": "per-group",
            "objective": {"expr": "x**2 + x*y + 3*y**2"},
            "start": {"x": 1.0, "y": -0.5},
            "optimizer": {"name": "sgd", "learning_rate": [0.1, 0.1], "momentum": 0.3},
            "steps": 400,
            "sweep": {
                "optimizer.learning_rate.0": {"linspace": [0.02, 1.5], "num": 32},
                "optimizer.learning_rate.1": {"linspace": [0.01, 0.6], "num": 32},
            },
        }
    ),
}


@pytest.fixture(scope="module")
def maps():
    """Each map's experiment and results, simulated once for the whole module."""
    cache = {}

    def get(name):
        if name not in cache:
            exp = MAPS[name]()
            cache[name] = exp, simulated(exp)
        return cache[name]

    return get


def sliced(exp, ds, **index):
    """A sub-map of ``ds`` and the experiment that sweeps exactly its values."""
    ds = ds.isel(index)
    config = dict(exp.config)
    config["start"] = dict(config["start"])
    sweep = {}
    for axis in exp.sweep:
        values = np.atleast_1d(np.asarray(ds[axis.key], np.float64)).tolist()
        if ds[axis.key].ndim:
            sweep[axis.key] = values
        else:
            config["start"][axis.key.split(".", 1)[1]] = values[0]
    config["sweep"] = sweep
    return load_config(config), ds


@pytest.mark.parametrize("name", list(MAPS))
def test_agreement_on_quadratic_maps(name, maps):
    exp, ds = maps(name)
    assert theory.applies(exp) is None
    rho = theory.radius(exp)
    share = theory.agreement(ds, exp, radius=rho)
    print(f"agreement {name}: {share:.4f} of {exp.n_runs} cells")
    assert share >= 0.99
    # The map must hold both sides of the boundary for the share to mean much.
    regimes = set(np.unique(ds["regime"]).tolist())
    assert {Regime.CONVERGED, Regime.DIVERGED} <= regimes


def test_the_cycle_at_lr_one_is_predicted_and_simulated(maps):
    exp, ds = maps("seed with the minimum and lr = 1, float64")
    rates = np.asarray(ds["optimizer.learning_rate"])
    one = int(np.argmin(np.abs(rates - 1)))
    assert rates[one] == pytest.approx(1.0, abs=1e-15)
    start = np.asarray(ds["start.w"])
    off = start != 2
    assert (np.asarray(ds["regime"])[one, off] == Regime.OSCILLATING).all()
    assert (np.asarray(ds["period"])[one, off] == 2).all()
    assert (theory.prediction(exp)[one, off] == Regime.OSCILLATING).all()
    assert (theory.prediction(exp)[:, ~off] == Regime.CONVERGED).all()


def test_agreement_checks_the_dataset_is_the_experiments(maps):
    _, ds = maps("seed, gradient descent, float32")
    other = config_file(
        "seed_quadratic.yaml",
        "sweep.optimizer.learning_rate.num=48",
        "sweep.start.w={linspace: [0.0, 1.0], num: 48}",
    )
    with pytest.raises(ValueError, match="start.w"):
        theory.agreement(ds, other)


# Where no closed form applies.

REFUSED = {
    "adam": (
        {"objective": {"expr": "(w - 2)**2 + 1"}, "start": {"w": 0.0}},
        {"name": "adam", "learning_rate": 0.1},
        "adam has no closed-form boundary",
    ),
    "rosenbrock": (
        {"objective": {"name": "rosenbrock"}},
        {"name": "sgd", "learning_rate": 0.001},
        "not quadratic: its Hessian changes",
    ),
    "rough quadratic": (
        {"objective": {"name": "rough_additive", "eps": 1e-4}},
        {"name": "sgd", "learning_rate": 0.1},
        "not quadratic: its Hessian changes",
    ),
    "schedule": (
        {"objective": {"expr": "(w - 2)**2 + 1"}, "start": {"w": 0.0}},
        {
            "name": "sgd",
            "learning_rate": 0.1,
            "schedule": {"name": "warmup_cosine", "decay_steps": 100},
        },
        "a schedule (warmup_cosine) changes the step size",
    ),
    "minibatches": (
        {"objective": {"model": "linear", "batch_size": 4}},
        {"name": "sgd", "learning_rate": 0.1},
        "minibatches",
    ),
    "no minimum": (
        {"objective": {"expr": "3 * w + y**2"}, "start": {"w": 0.0, "y": 1.0}},
        {"name": "sgd", "learning_rate": 0.1},
        "has no minimum",
    ),
    "a frozen group": (
        {"objective": {"expr": "x**2 + y**2"}, "start": {"x": 1.0, "y": 1.0}},
        {"name": "sgd", "learning_rate": [0.0, 0.1]},
        "optimizer.learning_rate.0 is 0 in some runs",
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_applies_refuses_with_its_reason(name):
    sections, optimizer, reason = REFUSED[name]
    exp = load_config({**sections, "optimizer": optimizer})
    assert reason in theory.applies(exp)
    with pytest.raises(ValueError, match="no closed-form boundary for"):
        theory.radius(exp)


def test_a_schedule_that_is_constant_applies(seed):
    seed["optimizer"]["schedule"] = "constant"
    assert theory.applies(load_config(seed)) is None


def test_each_swept_setting_of_the_objective_has_its_own_hessian():
    # ρ = |1 − η·curvature| per cell; a concave parabola diverges at any η.
    exp = load_config(
        {
            "objective": {"name": "quadratic", "curvature": 2.0},
            "optimizer": {"name": "sgd", "learning_rate": 0.5},
            "dtype": "float64",
            "sweep": {"objective.curvature": [-1.0, 1.0, 2.0, 5.0]},
        }
    )
    assert theory.radius(exp).tolist() == pytest.approx([1.5, 0.5, 0.0, 1.5])


# The overlay.


@pytest.fixture
def seed_map(maps):
    return maps("seed, gradient descent, float32")


def test_overlay_contour_lies_at_lr_one(seed_map, tmp_path):
    exp, ds = seed_map
    fig = figures.plot_stability_map(ds)
    ax = fig.axes[0]
    (contour,) = theory.overlay(ax, ds, exp)
    assert isinstance(contour, ContourSet)
    vertices = np.concatenate([path.vertices for path in contour.get_paths()])
    # The learning rate is the first sweep key, on the horizontal axis.
    assert ax.get_xlabel() == "learning rate α\noptimizer.learning_rate"
    assert vertices[:, 0] == pytest.approx(1.0, abs=1e-6)
    start = np.asarray(ds["start.w"])
    assert vertices[:, 1].min() == pytest.approx(start.min())
    assert vertices[:, 1].max() == pytest.approx(start.max())
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["theory: ρ = 1"]
    figures.save(fig, str(tmp_path), "overlay")
    assert (tmp_path / "overlay.png").stat().st_size > 0


def test_overlay_is_drawn_in_its_pixels_at_lr_one(seed_map):
    exp, ds = seed_map
    fig = theory.plot_theory_overlay(ds, exp)
    ax = fig.axes[0]
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3]
    box = ax.get_window_extent()
    height = image.shape[0]
    top, bottom = int(height - box.y1) + 3, int(height - box.y0) - 3
    left, right = int(box.x0) + 3, int(box.x1) - 3
    dark = (image[top:bottom, left:right] < 40).all(axis=-1)
    columns = np.flatnonzero(dark.any(axis=0)) + left + 0.5
    assert columns.size > 0
    lr = ax.transData.inverted().transform(
        np.stack([columns, np.full(columns.shape, box.y0 + 10)], axis=1)
    )[:, 0]
    cell = float(np.diff(np.asarray(ds["optimizer.learning_rate"]))[0])
    assert np.abs(lr - 1.0).max() < cell
    first, second = [text.get_text() for text in ax.get_legend().get_texts()]
    assert first == "theory: ρ = 1"
    agree = round(theory.agreement(ds, exp) * 2304)
    assert second.startswith(f"agrees on {agree:,} of 2,304 cells (")


def test_heavy_ball_contour_follows_lr_equals_one_plus_beta(maps):
    # Curvature 2: the boundary ηλ = 2 + 2β is η = 1 + β.
    exp, ds = maps("heavy ball, float32")
    fig = figures.plot_stability_map(ds)
    (contour,) = theory.overlay(fig.axes[0], ds, exp)
    vertices = np.concatenate([path.vertices for path in contour.get_paths()])
    lr, beta = vertices[:, 0], vertices[:, 1]
    cell = float(np.diff(np.asarray(ds["optimizer.learning_rate"]))[0])
    assert np.abs(lr - (1 + beta)).max() < cell / 2


def test_overlay_on_a_one_axis_map_is_a_vertical_line(seed_map):
    exp, ds = sliced(*seed_map, **{"start.w": 0})
    assert exp.shape == (48,)
    assert theory.agreement(ds, exp) >= 0.99
    fig = figures.plot_stability_map(ds)
    (line,) = theory.overlay(fig.axes[0], ds, exp)
    assert line.get_xdata()[0] == pytest.approx(1.0, abs=1e-6)


def test_the_share_shown_is_never_rounded_up(seed_map):
    exp, ds = seed_map
    ds = ds.copy(deep=True)
    regime = ds["regime"].values
    regime[0, 0] = Regime.OSCILLATING  # one of 2,304 cells now disagrees
    fig = theory.plot_theory_overlay(ds, exp)
    note = fig.axes[0].get_legend().get_texts()[-1].get_text()
    assert note == "agrees on 2,303 of 2,304 cells (99.9 %)"


def test_overlay_without_a_boundary_in_the_window_says_so(seed_map):
    exp, ds = sliced(*seed_map, **{"optimizer.learning_rate": slice(0, 20)})
    assert exp.shape == (20, 48)
    fig = figures.plot_stability_map(ds)
    assert theory.overlay(fig.axes[0], ds, exp) == []
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert labels == ["theory: ρ < 1 everywhere shown"]
