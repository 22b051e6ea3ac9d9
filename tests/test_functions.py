"""Named test functions: values worked by hand, stationary points and their kind,
gradients against finite differences, settings traced under jit and vmap, and
the Hessian and start of ``quadratic_nd``."""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from dynamics import functions
from dynamics.objectives import FAMILIES

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)
# quadratic_nd has no default spectrum; each spectrum is one more compilation.
SPECTRUM = {"spectrum": [1.0, 2.0, 3.0, 10.0]}
MIXED_SPECTRUM = {"spectrum": [0.5, 2.0, -1.0, 7.0, 7.0], "seed": 42}
STEP = 1e-6  # of the central differences


def defaults(table):
    return {key: setting.default for key, setting in table.items()}


def build(name, settings=None, start=None, dtype=F64):
    """The family's problem with the given values over its defaults."""
    family = FAMILIES[name]
    required = SPECTRUM if name == "quadratic_nd" else {}
    settings = defaults(family.settings) | required | (settings or {})
    start = defaults(family.start) | (start or {})
    return family.build(settings, start, dtype)


def flat_loss(problem):
    """The loss as a function of one flat vector, and that vector at the start."""
    flat, unravel = ravel_pytree(problem.params)
    return (lambda vector: problem.loss(unravel(vector))), flat


class Evaluation(NamedTuple):
    """A family at its start, all parameters flattened into one vector."""

    start: np.ndarray
    value: float
    gradient: np.ndarray
    hessian: np.ndarray
    differences: np.ndarray  # central differences of the loss, one per parameter


def evaluate(name, settings=None, start=None):
    """The :class:`Evaluation` of a family in float64.

    Number settings and start values go in as arguments of a jitted program, so
    the family sees them traced, as in a sweep; the program is compiled once
    per family (and per spectrum of ``quadratic_nd``), which keeps this file fast.
    """
    family = FAMILIES[name]
    required = SPECTRUM if name == "quadratic_nd" else {}
    settings = defaults(family.settings) | required | (settings or {})
    numbers = {
        key: float(value)
        for key, value in settings.items()
        if family.settings[key].kind == "number"
    }
    fixed = tuple(
        (key, tuple(value) if isinstance(value, list) else value)
        for key, value in settings.items()
        if key not in numbers
    )
    start = {
        key: float(value)
        for key, value in (defaults(family.start) | (start or {})).items()
    }
    with jax.enable_x64(True):
        results = _compiled(name, fixed)(numbers, start)
    return Evaluation(*(np.asarray(result) for result in results))


@functools.cache
def _compiled(name, fixed):
    def run(numbers, start):
        loss, flat = flat_loss(FAMILIES[name].build(numbers | dict(fixed), start, F64))
        steps = STEP * jnp.eye(flat.size)
        differences = jax.vmap(loss)(flat + steps) - jax.vmap(loss)(flat - steps)
        return (
            flat,
            loss(flat),
            jax.grad(loss)(flat),
            jax.hessian(loss)(flat),
            differences / (2 * STEP),
        )

    return jax.jit(run)


# Values at points worked out by hand: every default start, then other settings.
VALUES = [
    ("seed", {}, {}, 5.0),
    ("quadratic", {}, {}, 0.5),
    ("quartic", {}, {}, 0.25),
    ("double_well", {}, {}, 0.5625),
    ("cubic", {}, {}, 1 / 24 - 1 / 8),
    ("rough_additive", {}, {}, 1.01),  # cos(20π) = 1
    ("rough_multiplicative", {}, {}, 1.01),
    ("rosenbrock", {}, {}, 2.2**2 + 100 * 0.44**2),
    ("himmelblau", {}, {}, 121.0 + 49.0),
    ("beale", {}, {}, 1.5**2 + 2.25**2 + 2.625**2),
    ("rastrigin", {}, {}, 20 + 2 * (6.25 + 10)),  # cos(5π) = −1
    ("saddle", {}, {}, 1 - 1e-4),
    ("quadratic_nd", {}, {}, 0.5 * 4.0),  # ½·mean(spectrum)·w²
    ("seed", {}, {"w": -1.0}, 10.0),
    ("quadratic", {"curvature": 4.0, "center": 1.0, "offset": -2.0}, {"w": 3.0}, 6.0),
    ("quadratic", {"curvature": -4.0, "center": 1.0}, {"w": 3.0}, -8.0),
    ("quartic", {"scale": 2.0, "center": -1.0}, {"w": 1.0}, 8.0),
    ("double_well", {"height": 0.5, "width": 2.0}, {"w": 3.0}, 12.5),
    ("cubic", {"h": 3.0}, {"x": 2.0}, 8 / 3 - 6),
    ("rough_additive", {"eps": 0.5, "wavelength": 4.0}, {"x": 2.0}, 3.5),
    ("rough_multiplicative", {"eps": 0.5, "wavelength": 4.0}, {"x": 2.0}, 2.0),
    ("rosenbrock", {"a": 2.0, "b": 10.0}, {"x": 1.0, "y": 3.0}, 41.0),
    ("himmelblau", {}, {"x": 1.0, "y": 2.0}, 68.0),
    ("beale", {}, {"x": 2.0, "y": -1.0}, 6.25 + 5.0625 + 1.890625),
    ("rastrigin", {"A": 3.0}, {"x": 0.5, "y": 1.0}, 6 + 3.25 - 2),
    ("saddle", {}, {"x": 2.0, "y": 3.0}, -5.0),
    ("quadratic_nd", {"spectrum": [2.0, 6.0]}, {"w": -3.0}, 0.5 * 4.0 * 9),
]


def test_every_family_has_a_default_start_value_worked_by_hand():
    assert {name for name, settings, start, _ in VALUES if not start} == set(FAMILIES)


@pytest.mark.parametrize("name, settings, start, expected", VALUES)
def test_value_matches_the_hand_computation(name, settings, start, expected):
    with jax.enable_x64(True):
        problem = build(name, settings, start)
        value = float(problem.loss(problem.params))

    assert value == pytest.approx(expected, rel=1e-12)


# Stationary points: family, settings, point, value, and what the Hessian says.
STATIONARY = [
    ("seed", {}, {"w": 2.0}, 1.0, "min"),
    (
        "quadratic",
        {"curvature": 3.0, "center": -1.5, "offset": 0.25},
        {"w": -1.5},
        0.25,
        "min",
    ),
    (
        "quadratic",
        {"curvature": -2.0, "center": 0.5, "offset": 1.0},
        {"w": 0.5},
        1.0,
        "max",
    ),
    ("quartic", {"scale": 2.0, "center": 0.7}, {"w": 0.7}, 0.0, "flat"),
    ("double_well", {"height": 3.0, "width": 1.5}, {"w": 1.5}, 0.0, "min"),
    ("double_well", {"height": 3.0, "width": 1.5}, {"w": -1.5}, 0.0, "min"),
    ("double_well", {"height": 3.0, "width": 1.5}, {"w": 0.0}, 3.0 * 1.5**4, "max"),
    ("cubic", {"h": 2.0}, {"x": 2.0}, -8 / 6, "min"),
    ("cubic", {"h": 2.0}, {"x": 0.0}, 0.0, "max"),
    # eps·(2π/wavelength)² is about 39.5 by default, 1.58 here: above and below 2.
    ("rough_additive", {}, {"x": 0.0}, 0.01, "max"),
    ("rough_additive", {"eps": 0.04, "wavelength": 1.0}, {"x": 0.0}, 0.04, "min"),
    ("rough_multiplicative", {}, {"x": 0.0}, 0.0, "min"),
    ("rosenbrock", {}, {"x": 1.0, "y": 1.0}, 0.0, "min"),
    ("rosenbrock", {"a": -2.0, "b": 5.0}, {"x": -2.0, "y": 4.0}, 0.0, "min"),
    ("himmelblau", {}, {"x": 3.0, "y": 2.0}, 0.0, "min"),
    ("beale", {}, {"x": 3.0, "y": 0.5}, 0.0, "min"),
    ("rastrigin", {}, {"x": 0.0, "y": 0.0}, 0.0, "min"),
    ("rastrigin", {"A": 3.0}, {"x": 0.0, "y": 0.0}, 0.0, "min"),
    ("saddle", {}, {"x": 0.0, "y": 0.0}, 0.0, "saddle"),
    ("quadratic_nd", {}, {"w": 0.0}, 0.0, "min"),
    ("quadratic_nd", MIXED_SPECTRUM, {"w": 0.0}, 0.0, "saddle"),
]


def test_every_family_has_a_stationary_point_checked():
    assert {row[0] for row in STATIONARY} == set(FAMILIES)


@pytest.mark.parametrize("name, settings, point, value, kind", STATIONARY)
def test_stationary_points_have_their_value_zero_gradient_and_kind(
    name, settings, point, value, kind
):
    found = evaluate(name, settings, point)
    curvatures = np.linalg.eigvalsh(found.hessian)

    assert found.value == pytest.approx(value, abs=1e-12)
    np.testing.assert_allclose(found.gradient, 0.0, atol=1e-12)
    if kind == "min":
        assert np.all(curvatures > 1e-9)
    elif kind == "max":
        assert np.all(curvatures < -1e-9)
    elif kind == "saddle":
        assert curvatures.min() < -1e-9 and curvatures.max() > 1e-9
    else:
        np.testing.assert_allclose(curvatures, 0.0, atol=1e-12)


HIMMELBLAU_MINIMA = [
    (3.0, 2.0),
    (-2.805118, 3.131312),
    (-3.779310, -3.283186),
    (3.584428, -1.848126),
]


def plane(point):
    x, y = point
    return {"x": float(x), "y": float(y)}


def test_himmelblau_has_its_four_documented_minima():
    found = []
    for documented in HIMMELBLAU_MINIMA:
        assert evaluate("himmelblau", start=plane(documented)).value < 1e-9
        point = np.array(documented)
        for _ in range(6):  # Newton's method from the rounded documented point
            step = evaluate("himmelblau", start=plane(point))
            point = point - np.linalg.solve(step.hessian, step.gradient)
        minimum = evaluate("himmelblau", start=plane(point))

        np.testing.assert_allclose(point, documented, atol=1e-6)
        assert minimum.value < 1e-24
        np.testing.assert_allclose(minimum.gradient, 0.0, atol=1e-10)
        assert np.all(np.linalg.eigvalsh(minimum.hessian) > 1.0)
        found.append(point)

    gaps = [np.linalg.norm(a - b) for i, a in enumerate(found) for b in found[:i]]
    assert min(gaps) > 1.0  # four different minima, not one found four times


# Two points per family where jax.grad must agree with central differences.
GRADIENT_POINTS = [
    ("seed", {}, [{"w": -0.3}, {"w": 4.1}]),
    ("quadratic", {"curvature": -2.5, "center": 0.4}, [{"w": 1.3}, {"w": -2.0}]),
    ("quartic", {"scale": 3.0, "center": 0.2}, [{"w": 1.7}, {"w": -0.9}]),
    ("double_well", {"height": 2.0, "width": 0.8}, [{"w": 0.3}, {"w": -1.4}]),
    ("cubic", {"h": 1.5}, [{"x": 0.6}, {"x": -2.2}]),
    ("rough_additive", {}, [{"x": 0.37}, {"x": -1.21}]),
    ("rough_multiplicative", {}, [{"x": 0.37}, {"x": -1.21}]),
    ("rosenbrock", {}, [{"x": -1.2, "y": 1.0}, {"x": 0.5, "y": -0.7}]),
    ("himmelblau", {}, [{"x": 0.3, "y": -1.1}, {"x": -2.0, "y": 2.5}]),
    ("beale", {}, [{"x": 1.0, "y": 1.2}, {"x": -0.8, "y": 1.3}]),
    ("rastrigin", {}, [{"x": 2.5, "y": 2.5}, {"x": 0.13, "y": -0.71}]),
    ("saddle", {}, [{"x": 1.0, "y": 0.01}, {"x": -0.4, "y": 2.2}]),
    ("quadratic_nd", MIXED_SPECTRUM, [{"w": 1.0}, {"w": -2.5}]),
]


def test_every_family_has_its_gradient_checked():
    assert {row[0] for row in GRADIENT_POINTS} == set(FAMILIES)


@pytest.mark.parametrize("name, settings, points", GRADIENT_POINTS)
def test_gradient_matches_central_differences(name, settings, points):
    for point in points:
        found = evaluate(name, settings, point)
        assert np.all(found.gradient != 0)  # a point where the check means something
        np.testing.assert_allclose(
            found.gradient, found.differences, rtol=1e-6, atol=1e-8
        )


def swept_values(table, k):
    """The k-th of a few valid values near each number default."""
    return {
        key: setting.default + 0.25 * k * (1 + abs(setting.default))
        for key, setting in table.items()
        if setting.kind == "number"
    }


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_number_settings_and_starts_can_be_traced_under_jit_and_vmap(name):
    family = FAMILIES[name]
    batch = [
        (swept_values(family.settings, k), swept_values(family.start, k))
        for k in range(3)
    ]

    def loss_and_gradient(settings, start):
        loss, flat = flat_loss(build(name, settings, start))
        return loss(flat), jax.grad(loss)(flat)

    with jax.enable_x64(True):
        stacked = jax.tree.map(lambda *values: jnp.asarray(values), *batch)
        losses, gradients = jax.jit(jax.vmap(loss_and_gradient))(*stacked)
        untraced = [build(name, *values) for values in batch]
        untraced = [float(problem.loss(problem.params)) for problem in untraced]

    for k, values in enumerate(batch):
        np.testing.assert_allclose(losses[k], untraced[k], rtol=1e-12)
        expected = evaluate(name, *values).gradient  # traced too, but not batched
        np.testing.assert_allclose(gradients[k], expected, rtol=1e-12, atol=1e-14)
    assert len(set(untraced)) == 3  # the values took effect


def test_quadratic_swept_curvature_meets_the_stability_boundary_at_lr_2_over_c():
    def one_step(curvature, learning_rate):
        problem = build("quadratic", {"curvature": curvature, "center": 0.5})
        w = problem.params["w"]
        return w - learning_rate * jax.grad(problem.loss)(problem.params)["w"]

    with jax.enable_x64(True):
        curvatures = jnp.array([0.5, 1.0, 3.0, 8.0])
        step = jax.jit(jax.vmap(one_step))
        at_boundary = step(curvatures, 2 / curvatures)
        at_optimum = step(curvatures, 1 / curvatures)

    # From w = 1: the boundary step reflects through the center, 1/c lands on it.
    np.testing.assert_allclose(at_boundary, 0.0, atol=1e-15)
    np.testing.assert_allclose(at_optimum, 0.5, atol=1e-15)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_params_and_loss_keep_the_dtype_and_the_family_order(name, dtype):
    family = FAMILIES[name]
    start = dict(reversed(defaults(family.start).items()))
    with jax.enable_x64(True):  # so that a stray float64 constant would show
        problem = build(name, start=start, dtype=dtype)
        loss = problem.loss(problem.params)

    assert tuple(problem.params) == tuple(family.start)
    assert all(value.dtype == dtype for value in problem.params.values())
    assert loss.shape == () and loss.dtype == dtype


def test_every_family_documents_itself_and_its_defaults_pass_its_checks():
    for name, family in FAMILIES.items():
        assert family.summary.startswith("J("), name
        for key, setting in (family.settings | family.start).items():
            assert setting.help, (name, key)
            assert setting.kind in ("number", "integer", "choice", "numbers")
            if setting.check is not None and setting.default is not None:
                assert setting.check(setting.default) is None, (name, key)
        assert all(setting.kind == "number" for setting in family.start.values())


POSITIVE_SETTINGS = [
    ("quartic", "scale"),
    ("double_well", "height"),
    ("double_well", "width"),
    ("rough_additive", "wavelength"),
    ("rough_multiplicative", "wavelength"),
]


@pytest.mark.parametrize("name, key", POSITIVE_SETTINGS)
def test_settings_that_must_be_positive_are_checked(name, key):
    check = FAMILIES[name].settings[key].check
    assert check(0.0) and check(-1.0)
    assert check(1e-3) is None


def test_quadratic_nd_settings_are_checked():
    spectrum = FAMILIES["quadratic_nd"].settings["spectrum"]
    seed = FAMILIES["quadratic_nd"].settings["seed"]
    assert spectrum.default is None  # required
    assert spectrum.check([]) and spectrum.check([1.0, math.nan])
    assert spectrum.check([-1.0]) is None
    assert spectrum.check([1.0, None]) is None  # a bad entry the schema reports
    assert seed.check(-1) and seed.check(0) is None


# quadratic_nd: spectrum and seed, including a negative and a repeated eigenvalue.
SPECTRA = [
    ([3.0], 0),
    (SPECTRUM["spectrum"], 0),
    (MIXED_SPECTRUM["spectrum"], MIXED_SPECTRUM["seed"]),
    ([float(k) for k in range(1, 13)], 7),
]


@pytest.mark.parametrize("spectrum, seed", SPECTRA)
def test_quadratic_nd_hessian_is_the_rotated_spectrum(spectrum, seed):
    n = len(spectrum)
    hessian = evaluate("quadratic_nd", {"spectrum": spectrum, "seed": seed}).hessian
    q = functions.quadratic_nd_basis(n, seed)

    assert hessian.shape == (n, n)
    np.testing.assert_allclose(q.T @ q, np.eye(n), atol=1e-12)
    np.testing.assert_allclose(hessian, q @ np.diag(spectrum) @ q.T, atol=1e-12)
    np.testing.assert_allclose(
        hessian, functions.quadratic_nd_matrix(spectrum, seed), atol=1e-12
    )
    np.testing.assert_allclose(
        np.linalg.eigvalsh(hessian), sorted(spectrum), atol=1e-12
    )


def test_quadratic_nd_rotation_is_the_sign_fixed_qr_of_the_seeded_gaussian():
    # LAPACK gives seed 0 a negative diagonal in R, so every sign needs fixing.
    gaussian = np.random.default_rng(0).standard_normal((4, 4))
    q = functions.quadratic_nd_basis(4, 0)
    r = q.T @ gaussian  # R of the QR factors, when q is their Q

    np.testing.assert_allclose(np.tril(r, -1), 0.0, atol=1e-12)
    assert np.all(np.diag(r) > 0)
    np.testing.assert_array_equal(q, functions.quadratic_nd_basis(4, 0))
    assert np.abs(q - functions.quadratic_nd_basis(4, 1)).max() > 0.1
    assert np.abs(np.abs(q) - np.eye(4)).max() > 0.1  # it mixes the axes


def test_quadratic_nd_factorises_once_however_often_it_is_built():
    from dynamics import engine
    from dynamics.config import load_config

    functions._basis.cache_clear()
    spectrum = [float(v) for v in np.linspace(0.5, 3.0, 37)]
    exp = load_config(
        {
            "objective": {"name": "quadratic_nd", "spectrum": spectrum, "seed": 5},
            "optimizer": {"learning_rate": 0.1},
            "steps": 10,
        }
    )
    engine.path(exp)
    engine.path(load_config(exp.config, ["optimizer.learning_rate=0.2"]))
    assert functions._basis.cache_info().misses == 1
    # What callers get is theirs to change; the kept copy is not touched.
    q = functions.quadratic_nd_basis(37, 5)
    q[:] = 0.0
    assert np.abs(functions.quadratic_nd_basis(37, 5)).max() > 0.1
    a = functions.quadratic_nd_matrix(spectrum, 5)
    a[:] = 0.0
    np.testing.assert_allclose(
        np.linalg.eigvalsh(functions.quadratic_nd_matrix(spectrum, 5)),
        spectrum,
        rtol=1e-12,
    )


@pytest.mark.parametrize("w", [1.0, -2.5, 3.0])
@pytest.mark.parametrize("spectrum, seed", SPECTRA)
def test_quadratic_nd_starts_at_distance_w_with_equal_share_on_every_mode(
    spectrum, seed, w
):
    n = len(spectrum)
    w0 = evaluate("quadratic_nd", {"spectrum": spectrum, "seed": seed}, {"w": w}).start
    q = functions.quadratic_nd_basis(n, seed)

    assert w0.shape == (n,)
    assert np.linalg.norm(w0) == pytest.approx(abs(w), rel=1e-12)
    np.testing.assert_allclose(q.T @ w0, np.full(n, w / math.sqrt(n)), rtol=1e-12)
