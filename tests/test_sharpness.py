"""Sharpness: top Hessian eigenvalues against known spectra, thresholds in closed
form, the edge of stability of a run, and its figure."""

import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dynamics import engine, models, optimizers
from dynamics.config import load_config
from dynamics.functions import quadratic_nd_basis, quadratic_nd_matrix
from dynamics.sharpness import (
    EXACT_LIMIT,
    edge_of_stability,
    plot_edge_of_stability,
    preconditioned_top_eigenvalue,
    threshold,
    top_eigenvalue,
)

CONFIGS = Path(__file__).parent.parent / "configs"
OUT = Path("/tmp/sharpness_helper")
# Float32 eigenvalues to this relative error, float64 far tighter.
RTOL = {jnp.float32: 1e-4, jnp.float64: 1e-10}


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def outlier_spectrum(size):
    """A bulk in [0.1, 1] and two outliers, as network Hessians tend to have."""
    return [*np.linspace(0.1, 1.0, size - 2), 2.0, 5.0]


def top_of(hessian, w, vector=None, quartic=0.0, iterations=20):
    """top_eigenvalue of ½wᵀAw + ¼·quartic·Σw⁴, whose Hessian is A + 3·quartic·diag(w²).

    Everything but the iteration count is an array argument (a missing vector
    becomes zeros, which start the same way), so tests of one shape share one
    compilation.
    """
    vector = jnp.zeros_like(w) if vector is None else vector
    return _top(hessian, w, vector, jnp.asarray(quartic, w.dtype), iterations)


@functools.partial(jax.jit, static_argnums=4)
def _top(hessian, w, vector, quartic, iterations):
    def loss(params):
        w = params["w"]
        return 0.5 * w @ (hessian @ w) + 0.25 * quartic * jnp.sum(w**4)

    value, vector = top_eigenvalue(
        loss, {"w": w}, iterations=iterations, vector={"w": vector}
    )
    return value, vector["w"]


def matrix(spectrum, dtype=jnp.float64, seed=0):
    return jnp.asarray(quadratic_nd_matrix(spectrum, seed), dtype)


SPECTRA = {
    "exact": [0.5, 1.0, 2.0, 3.0, 7.5],
    "exact, negative": [-9.0, -4.0, -1.0, 0.5, 1.5],
    "exact, all negative": [-9.0, -4.0, -1.0, -0.5, -0.25],
    "lanczos": outlier_spectrum(100),
    "lanczos, negative": [*np.linspace(-10.0, 0.0, 99), 3.0],
    "lanczos, all negative": [*np.linspace(-10.0, -3.0, 99), -1.0],
    "lanczos, just above the exact limit": outlier_spectrum(EXACT_LIMIT + 1),
}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("case", sorted(SPECTRA))
def test_the_top_eigenvalue_of_a_known_spectrum(x64, case, dtype):
    spectrum = SPECTRA[case]
    size = len(spectrum)
    value, vector = top_of(matrix(spectrum, dtype), jnp.ones(size, dtype))
    assert value.dtype == dtype
    # The algebraic maximum, not the largest magnitude (−9 or −10 here).
    np.testing.assert_allclose(float(value), max(spectrum), rtol=RTOL[dtype])
    top = quadratic_nd_basis(size, 0)[:, int(np.argmax(spectrum))]
    assert abs(float(top @ vector)) == pytest.approx(1.0, abs=10 * RTOL[dtype])


def test_a_spectrum_of_two_values_survives_lanczos_breakdown(x64):
    # From any start the Krylov space has dimension 2, so every later direction
    # is a replacement; zero-padded directions would wrongly report 0 here.
    hessian = matrix([-1.0] * 50 + [-3.0] * 50)
    value, vector = top_of(hessian, jnp.ones(100))
    assert float(value) == pytest.approx(-1.0, rel=1e-12)
    assert float(jnp.linalg.norm(vector)) == pytest.approx(1.0, rel=1e-12)
    zero, _ = top_of(jnp.zeros((100, 100)), jnp.ones(100))
    assert float(zero) == 0.0


def test_a_uniform_spectrum_needs_more_iterations(x64):
    # No gap at the top: Lanczos converges like a Chebyshev polynomial of the
    # relative gap 1/99, slowly; more iterations get there.
    hessian, w = matrix(np.linspace(1.0, 100.0, 100)), jnp.ones(100)
    few, _ = top_of(hessian, w)
    many, _ = top_of(hessian, w, iterations=80)
    assert 90.0 < float(few) < 100.0 - 1e-3  # below: Ritz values never exceed
    assert float(many) == pytest.approx(100.0, rel=1e-10)


def test_a_warm_start_converges_in_two_iterations(x64):
    hessian, w = matrix([*np.linspace(0.0, 5.0, 99), 5.5]), jnp.ones(100)
    value, vector = top_of(hessian, w, iterations=80)
    cold, _ = top_of(hessian, w, iterations=2)
    warm, _ = top_of(hessian, w, vector, iterations=2)
    assert float(value) == pytest.approx(5.5, rel=1e-10)
    assert float(warm) == pytest.approx(5.5, rel=1e-10)
    assert abs(float(cold) - 5.5) > 0.5


def test_a_warm_start_follows_a_moving_hessian(x64):
    hessian = matrix([*np.linspace(0.0, 5.0, 99), 5.5])
    w = 0.1 * jax.random.normal(jax.random.key(3), (100,), jnp.float64)
    _, vector = top_of(hessian, w, quartic=1.0, iterations=80)
    moved = w + 0.002 * jax.random.normal(jax.random.key(4), (100,), jnp.float64)
    exact = np.linalg.eigvalsh(hessian + np.diag(3 * np.asarray(moved) ** 2))[-1]
    warm, _ = top_of(hessian, moved, vector, quartic=1.0, iterations=2)
    cold, _ = top_of(hessian, moved, quartic=1.0, iterations=2)
    assert abs(float(warm) - exact) < 1e-6 * exact
    assert abs(float(cold) - exact) > 1e-2 * exact


def test_a_zero_or_non_finite_start_is_no_start(x64):
    hessian, w = matrix(outlier_spectrum(100)), jnp.ones(100)
    loss = functools.partial(lambda h, p: 0.5 * p["w"] @ (h @ p["w"]), hessian)
    unstarted, _ = jax.jit(lambda p: top_eigenvalue(loss, p, iterations=2))({"w": w})
    for start in (jnp.zeros(100), jnp.full(100, jnp.nan)):
        value, _ = top_of(hessian, w, start, iterations=2)
        assert float(value) == float(unstarted)


@pytest.mark.parametrize("size", [8, 64])
def test_vmap_over_points_and_jit(x64, size):
    hessian = matrix(outlier_spectrum(size))
    points = 0.1 * jax.random.normal(jax.random.key(0), (4, size), jnp.float64)
    values, vectors = jax.jit(jax.vmap(lambda w: top_of(hessian, w, quartic=1.0)))(
        points
    )
    expected = [
        np.linalg.eigvalsh(hessian + np.diag(3 * np.asarray(w) ** 2))[-1]
        for w in points
    ]
    np.testing.assert_allclose(np.asarray(values), expected, rtol=1e-10)
    assert vectors.shape == (4, size)


def test_every_k_steps_inside_a_vmapped_scan(x64):
    """The engine's use: a lax.cond on the unbatched step inside vmap and scan."""
    hessian = matrix(outlier_spectrum(40))
    scales = jnp.array([0.5, 1.0, 2.0])
    every = 3

    def run(scale):
        def loss(params):
            return 0.5 * scale * params["w"] @ (hessian @ params["w"])

        def step(carry, t):
            params, vector = carry
            value, vector = jax.lax.cond(
                t % every == 0,
                lambda: top_eigenvalue(loss, params, vector=vector),
                lambda: (jnp.full((), jnp.nan), vector),
            )
            params = jax.tree.map(
                lambda p, g: p - 0.01 * g, params, jax.grad(loss)(params)
            )
            return (params, vector), value

        params = {"w": jnp.ones(40)}
        zeros = jax.tree.map(jnp.zeros_like, params)
        return jax.lax.scan(step, (params, zeros), jnp.arange(10))[1]

    values = np.asarray(jax.jit(jax.vmap(run))(scales))
    taken = np.arange(10) % every == 0
    np.testing.assert_allclose(
        values[:, taken], np.outer(scales, [5.0] * taken.sum()), rtol=1e-10
    )
    assert np.isnan(values[:, ~taken]).all()
    # An unbatched predicate keeps a real branch: the skipped steps cost nothing.
    assert " cond[" in str(jax.make_jaxpr(jax.vmap(run))(scales))


# Adam's preconditioned sharpness.


def adam_state(nu, count, dtype):
    nu = {"w": jnp.asarray(nu, dtype)}
    zeros = jax.tree.map(jnp.zeros_like, nu)
    return optax.ScaleByAdamState(count=jnp.asarray(count, jnp.int32), mu=zeros, nu=nu)


@pytest.mark.parametrize("size, dtype", [(5, jnp.float32), (50, jnp.float64)])
def test_preconditioned_sharpness_of_a_diagonal_quadratic(x64, size, dtype):
    rng = np.random.default_rng(size)
    curvature = rng.uniform(0.1, 10.0, size)
    nu = rng.uniform(1e-4, 1e-2, size)
    count, b2, eps = 3, 0.99, 1e-3

    def loss(params):
        return 0.5 * jnp.sum(jnp.asarray(curvature, dtype) * params["w"] ** 2)

    # Inside a chain as adamw builds it, to check the state is found anywhere.
    state = (adam_state(nu, count, dtype), optax.EmptyState(), optax.EmptyState())
    params = {"w": jnp.ones(size, dtype)}
    value, _ = preconditioned_top_eigenvalue(
        loss, params, state, b2=b2, eps=eps, iterations=size
    )
    corrected = nu / (1 - b2**count)
    expected = np.max(curvature / (np.sqrt(corrected) + eps))
    np.testing.assert_allclose(float(value), expected, rtol=RTOL[dtype])


def test_preconditioned_sharpness_needs_exactly_one_adam_state():
    params = {"w": jnp.ones(3)}

    def loss(p):
        return jnp.sum(p["w"] ** 2)

    with pytest.raises(ValueError, match="found 0"):
        preconditioned_top_eigenvalue(loss, params, optax.sgd(0.1).init(params))
    two = optimizers.build({"name": "adam", "learning_rate": [0.1, 0.2]}).init(
        {"a": jnp.ones(2), "b": jnp.ones(2)}
    )
    with pytest.raises(ValueError, match="found 2"):
        preconditioned_top_eigenvalue(loss, params, two)


# Thresholds.


def section(name, **settings):
    exp = load_config(
        {
            "objective": {"expr": "x**2 + y**2"},
            "start": {"x": 1.0, "y": 1.0},
            "optimizer": {"name": name, **settings},
        }
    )
    return exp.config["optimizer"]


THRESHOLDS = [
    (section("sgd", learning_rate=0.1), 20.0, "2/η", False),
    (section("sgd", learning_rate=0.1, momentum=0.0), 20.0, "2/η", False),
    (section("sgd", learning_rate=0.1, momentum=0.9), 38.0, "(2 + 2β)/η", False),
    (
        section("sgd", learning_rate=0.1, momentum=0.9, nesterov=True),
        3.8 / 0.28,
        "(2 + 2β)/((1 + 2β)η)",
        False,
    ),
    (section("adam", learning_rate=0.01), 3.8 / 0.001, "(2 + 2β₁)/((1 − β₁)η)", True),
    (
        section("adamw", learning_rate=0.01, b1=0.5),
        600.0,
        "(2 + 2β₁)/((1 − β₁)η)",
        True,
    ),
    (
        section("adam", learning_rate=0.01, nesterov=True),
        3.8 / (0.1 * 2.8 * 0.01),
        "(2 + 2β₁)/((1 − β₁)(1 + 2β₁)η)",
        True,
    ),
]


@pytest.mark.parametrize("optimizer, value, label, preconditioned", THRESHOLDS)
def test_thresholds_in_closed_form(optimizer, value, label, preconditioned):
    found = threshold(optimizer)
    assert found.value == pytest.approx(value, rel=1e-12)
    assert (found.label, found.preconditioned) == (label, preconditioned)


@pytest.mark.parametrize("optimizer, value, label, preconditioned", THRESHOLDS)
def test_thresholds_are_where_optax_stops_converging(
    x64, optimizer, value, label, preconditioned
):
    """Each optimizer's own update on ½λw², just below and above the threshold.

    For the Adam family, eps = 1 with gradients near 1e-10 freezes the
    preconditioner at P ≈ 1, so the threshold bounds λ itself.
    """
    del value, label, preconditioned
    value = threshold(optimizer).value
    if optimizer["name"] != "sgd":
        optimizer = dict(optimizer, eps=1.0)
    opt = optimizers.build(optimizer, np.float64)
    w0 = 1e-10

    def init(w):
        state = opt.init(w)
        if optimizer["name"] == "sgd":
            return state
        # A late step count: bias corrections near 1 from the start, so the
        # first steps are not plain gradient descent with the full η.
        return optax.tree_utils.tree_set(state, count=jnp.asarray(10_000))

    @jax.vmap
    def path(curvature):
        def step(carry, _):
            w, state = carry
            updates, state = opt.update(curvature * w, state, w)
            return (w + updates, state), abs(w) / w0

        w = jnp.asarray(w0)
        return jax.lax.scan(step, (w, init(w)), length=2000)[1]

    below, above = np.asarray(path(jnp.array([0.97, 1.03]) * value))
    assert below[-1] < 1e-3 and below.max() < 100
    # Unstable: the growth is fast, and for Adam it ends once gradients reach
    # eps and the preconditioner grows; an overflow counts as growth too.
    assert np.nan_to_num(above, nan=np.inf).max() > 1e3


@pytest.mark.parametrize(
    "optimizer",
    [
        section("sgd", learning_rate=[0.1, 0.2]),
        section(
            "sgd",
            learning_rate=0.1,
            schedule={"name": "exponential", "decay_rate": 0.5},
        ),
        section("sgd", learning_rate=0.0),
        section("rmsprop", learning_rate=0.1),
    ],
)
def test_no_single_threshold(optimizer):
    assert threshold(optimizer) is None


# The edge of stability of a run.


def quadratic_config(spectrum, dtype, **optimizer):
    return {
        "name": "quadratic",
        "objective": {"name": "quadratic_nd", "spectrum": list(spectrum)},
        "start": {"w": 1.0},
        "optimizer": {"name": "sgd", "learning_rate": 0.1, **optimizer},
        "steps": 40,
        "dtype": dtype,
    }


@pytest.fixture(scope="module")
def small_run():
    return edge_of_stability(quadratic_config(outlier_spectrum(4), "float32"))


def test_gradient_descent_on_a_quadratic_has_constant_sharpness(small_run):
    np.testing.assert_allclose(small_run.sharpness, 5.0, rtol=RTOL[jnp.float32])
    assert (small_run.threshold, small_run.label) == (20.0, "2/η")
    assert not small_run.preconditioned
    assert small_run.step.tolist() == list(range(40))
    assert np.all(np.diff(small_run.loss) < 0)


def test_every_k_steps_with_lanczos_along_a_path():
    spectrum = outlier_spectrum(40)
    eos = edge_of_stability(quadratic_config(spectrum, "float64"), every=7)
    taken = eos.step % 7 == 0
    np.testing.assert_allclose(eos.sharpness[taken], 5.0, rtol=RTOL[jnp.float64])
    assert np.isnan(eos.sharpness[~taken]).all()


def test_adam_edge_of_stability_uses_the_state_of_each_step(x64):
    """The preconditioned sharpness at every step against optax run by hand."""
    curvature = np.array([6.0, 1.0, 0.3])
    config = {
        "objective": {"expr": "3*x**2 + y**2/2 + 0.15*z**2"},
        "start": {"x": 1.0, "y": -2.0, "z": 0.5},
        "optimizer": {"name": "adam", "learning_rate": 0.01, "b2": 0.9, "eps": 1e-3},
        "steps": 12,
        "dtype": "float64",
    }
    eos = edge_of_stability(config)
    assert eos.preconditioned and eos.label == "(2 + 2β₁)/((1 − β₁)η)"

    opt = optax.adam(0.01, b2=0.9, eps=1e-3)
    w = jnp.array([1.0, -2.0, 0.5])
    state = opt.init(w)
    expected = []
    for _ in range(12):
        updates, state = opt.update(jnp.asarray(curvature) * w, state)
        corrected = np.asarray(state[0].nu) / (1 - 0.9 ** int(state[0].count))
        expected.append(np.max(curvature / (np.sqrt(corrected) + 1e-3)))
        w = w + updates
    np.testing.assert_allclose(eos.sharpness, expected, rtol=1e-10)


def test_catapult_ends_below_two_over_eta():
    """Lewkowycz et al. (2020): 2 < ηλ₀ < 4 spikes the loss and flattens the
    model until its sharpness is below 2/η."""
    exp = load_config(CONFIGS / "catapult.yaml", ["optimizer.learning_rate=1.5"])
    eos = edge_of_stability(exp, every=100)
    lam0 = models.uv_curvature(1024, 0)
    initial, final = eos.sharpness[0], eos.sharpness[-100]
    assert eos.threshold == pytest.approx(2 / 1.5)
    assert final < eos.threshold < initial
    # At the start the Hessian is ∇f∇fᵀ (top eigenvalue λ₀) plus f·∂²f, whose
    # eigenvalues are ±f/√n; at the end f = 0 and it is λ = (|u|² + |v|²)/n.
    assert initial == pytest.approx(lam0, abs=abs(math.sqrt(2 * eos.loss[0])) / 32)
    end = engine.path(exp).params
    lam_end = (np.sum(end["u"][-1] ** 2) + np.sum(end["v"][-1] ** 2)) / 1024
    assert final == pytest.approx(lam_end, rel=1e-8)
    assert eos.loss.max() > 100 * eos.loss[0]


def test_the_edge_of_stability_config_reaches_and_holds_two_over_eta():
    exp = load_config(CONFIGS / "edge_of_stability.yaml", ["steps=1000"])
    eos = edge_of_stability(exp, every=50)
    sharpness = eos.sharpness[np.isfinite(eos.sharpness)]
    assert sharpness[0] < 0.2 * eos.threshold  # progressive sharpening ahead
    assert sharpness.max() > eos.threshold  # it reaches 2/η ...
    late = sharpness[len(sharpness) // 2 :]
    np.testing.assert_allclose(late, eos.threshold, rtol=0.05)  # ... and stays
    assert eos.loss[-1] < 0.1 * eos.loss[0]


def test_edge_of_stability_refuses_bad_arguments():
    config = quadratic_config([1.0, 2.0], "float32")
    with pytest.raises(ValueError, match="every must be an int"):
        edge_of_stability(config, every=0)
    with pytest.raises(ValueError, match="iterations must be an int"):
        edge_of_stability(config, iterations=1.5)
    config["optimizer"] = {"name": "adam", "learning_rate": [0.1]}
    with pytest.raises(ValueError, match="learning rate"):
        edge_of_stability(config)


# The figure.


def test_the_figure_has_loss_and_sharpness_with_the_threshold_line(small_run):
    fig = plot_edge_of_stability(small_run)
    assert len(fig.axes) == 2
    top, bottom = fig.axes
    assert top.get_shared_x_axes().joined(top, bottom)
    assert top.get_yscale() == "log"
    dashed = [line for line in bottom.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1
    np.testing.assert_allclose(dashed[0].get_ydata(), [20.0, 20.0])
    assert dashed[0].get_label() == "2/η = 20"
    low, high = bottom.get_ylim()
    assert low < 5.0 and 20.0 < high  # both the sharpness and the line in view
    OUT.mkdir(exist_ok=True)
    fig.savefig(OUT / "test_figure.png", dpi=80)


# Per-run sharpness inside the engine's sweep.


def test_a_sweep_records_the_known_top_eigenvalue_of_a_quadratic():
    from dynamics import engine

    spectrum = [0.5, 1.0, 3.0, 7.0]
    exp = load_config(
        {
            "objective": {"name": "quadratic_nd", "spectrum": spectrum},
            "optimizer": {"name": "sgd", "learning_rate": 0.1},
            "steps": 400,
            "dtype": "float64",
            "analysis": {"sharpness": True, "sharpness_every": 7},
            "sweep": {"optimizer.learning_rate": [0.1, 0.2, 0.3]},
        }
    )
    out = engine.simulate(exp)
    np.testing.assert_allclose(out["sharpness"], 7.0, rtol=1e-10)
    np.testing.assert_allclose(out["max_sharpness"], 7.0, rtol=1e-10)
    assert out["regime"].tolist() == [0, 0, 2]  # 2/0.3 < 7: the sharpest mode grows


def test_a_sweep_sees_the_catapult_lower_the_sharpness():
    from dynamics import engine

    exp = load_config(
        CONFIGS / "catapult.yaml",
        [
            "objective.width=256",
            "steps=300",
            "sweep.optimizer.learning_rate.num=4",
            "sweep.optimizer.learning_rate.linspace=[0.4, 1.6]",
            "analysis.sharpness=true",
            "analysis.sharpness_every=5",
        ],
    )
    out = engine.simulate(exp)
    rates = exp.sweep[0].values
    start = out["max_sharpness"][0]  # at a small rate the sharpness barely moves
    assert out["sharpness"][0] == pytest.approx(start, rel=0.05)
    catapulted = rates * start > 2
    assert catapulted.tolist() == [False, False, True, True]
    # Above 2/λ₀ training lands where the sharpness is below 2/η.
    assert np.all(out["sharpness"][catapulted] < 2 / rates[catapulted])
    assert np.all(out["max_sharpness"] >= out["sharpness"])
