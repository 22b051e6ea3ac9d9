"""Truths of the model families: shapes, seeds, offsets, tracing, exact optima.

Every test but one runs with float64 enabled, which the exact comparisons
need, and most use one small configuration per model, ``SMALL``: JAX then
compiles each shape once for the whole file.
"""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from dynamics import models
from dynamics.objectives import MODELS

F32, F64 = np.dtype("float32"), np.dtype("float64")
ALL = ["mlp", "uv", "linear", "logistic"]
DATA = {
    "mlp": models.mlp_data,
    "linear": models.linear_data,
    "logistic": models.logistic_data,
}
SMALL = {
    "mlp": {"width": 6},
    "uv": {"width": 16},
    "linear": {"dim": 3},
    "logistic": {"dim": 3},
}


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def filled(table, values):
    unknown = set(values) - set(table)
    assert not unknown, f"not in the table: {unknown}"
    return {key: values.get(key, setting.default) for key, setting in table.items()}


def small(model, **settings):
    return filled(MODELS[model].settings, {**SMALL[model], **settings})


def build(model, dtype=F64, start=None, **settings):
    """The problem of ``model`` in its small configuration, with overrides."""
    family = MODELS[model]
    return family.build(
        small(model, **settings), filled(family.start, start or {}), dtype
    )


def arrays(tree):
    return {name: np.asarray(value) for name, value in tree.items()}


# The tables.


def test_every_family_is_documented_and_its_defaults_pass_its_checks():
    assert set(MODELS) >= set(ALL)
    for name, family in MODELS.items():
        assert family.summary, name
        for key, setting in {**family.settings, **family.start}.items():
            assert setting.help, f"{name}.{key} has no help"
            assert setting.kind in ("number", "real", "integer", "choice"), (name, key)
            if setting.check is not None:
                assert setting.check(setting.default) is None, (name, key)
            if setting.kind == "choice":
                assert setting.default in setting.choices, (name, key)


def test_the_defaults_are_the_papers():
    mlp = filled(MODELS["mlp"].settings, {})
    assert (mlp["width"], mlp["depth"], mlp["activation"]) == (16, 2, "tanh")
    assert (mlp["data_ratio"], mlp["batch_size"]) == (1.0, 0)
    assert MODELS["uv"].settings["width"].default == 512
    assert MODELS["uv"].settings["target"].default == 0.0


@pytest.mark.parametrize(
    "model, key, value, message",
    [
        ("mlp", "depth", 0, "between 1 and"),
        ("mlp", "depth", models.MLP_MAX_DEPTH + 1, "between 1 and"),
        ("mlp", "data_ratio", 0.0, "positive"),
        ("mlp", "batch_size", -1, "at least 0"),
        ("linear", "noise", -0.1, "at least 0"),
        ("logistic", "noise", 0.6, "between 0 and 0.5"),
        ("uv", "width", 0, "at least 1"),
    ],
)
def test_checks_refuse_values_out_of_range(model, key, value, message):
    assert message in MODELS[model].settings[key].check(value)


# Shapes and counts.

SHAPES = [
    # The paper's network: 16 * 16 + 16 = 272 parameters, one point each.
    ("mlp", {"width": 16}, {"layer0": (16, 16), "layer1": (16, 1)}, 272),
    (
        "mlp",
        {"depth": 3, "data_ratio": 0.5},
        {"layer0": (6, 6), "layer1": (6, 6), "layer2": (6, 1)},
        39,  # round(0.5 * 78)
    ),
    ("mlp", {"depth": 1, "data_ratio": 0.01}, {"layer0": (6, 1)}, 1),
    ("linear", {"dim": 8}, {"weights": (8,), "bias": ()}, 36),
    ("logistic", {"data_ratio": 1.9}, {"weights": (3,), "bias": ()}, 8),  # 7.6
    ("uv", {"width": 512}, {"u": (512,), "v": (512,)}, None),
]


@pytest.mark.parametrize("model, settings, shapes, points", SHAPES)
def test_parameter_shapes_and_data_points(model, settings, shapes, points):
    problem = build(model, F32, **settings)
    assert {k: v.shape for k, v in problem.params.items()} == shapes
    assert all(v.dtype == F32 for v in problem.params.values())
    assert problem.loss(problem.params).dtype == F32
    if points is not None:
        full = small(model, **settings)
        inputs, targets = DATA[model](full, F32)
        assert inputs.shape == (points, full.get("width", full.get("dim")))
        assert targets.shape[0] == points


@pytest.mark.parametrize("model", ["mlp", "logistic"])  # both ways of drawing
def test_a_model_runs_in_float32_without_x64(model):
    with jax.enable_x64(False):
        problem = build(model, F32)
        loss, grad = jax.value_and_grad(problem.loss)(problem.params)
    assert loss.dtype == F32 and np.isfinite(loss)
    assert all(g.dtype == F32 for g in grad.values())


def test_a_seed_draws_the_same_problem_in_every_dtype():
    for model in ("mlp", "uv"):
        wide, narrow = arrays(build(model).params), arrays(build(model, F32).params)
        for name in wide:
            assert wide[name].dtype == F64
            np.testing.assert_array_equal(wide[name], narrow[name].astype(F64))


@pytest.mark.parametrize("model", ALL)
def test_a_seed_fixes_the_problem_and_another_seed_changes_it(model):
    start = {"weights": 0.3} if model in ("linear", "logistic") else {}
    first, again, other = (build(model, start=start, seed=s) for s in (3, 3, 4))
    for name in first.params:
        np.testing.assert_array_equal(first.params[name], again.params[name])
    assert first.loss(first.params) == again.loss(again.params)
    if model in ("mlp", "uv"):  # the seed draws the initialization
        group = next(iter(first.params))
        assert not np.array_equal(first.params[group], other.params[group])
    if model != "uv":  # the seed draws the data
        assert first.loss(other.params) != other.loss(other.params)


# Start offsets.


@pytest.mark.parametrize(
    "model, settings, group",
    [
        ("mlp", {"depth": 3}, "layer0"),
        ("mlp", {"depth": 3}, "layer1"),
        ("mlp", {"depth": 3}, "layer2"),
        ("uv", {}, "u"),
        ("uv", {}, "v"),
    ],
)
def test_an_offset_shifts_exactly_its_own_group(model, settings, group):
    plain = arrays(build(model, **settings).params)
    shifted = arrays(build(model, start={group: 0.25}, **settings).params)
    for name in plain:
        expected = plain[name] + (0.25 if name == group else 0.0)
        np.testing.assert_array_equal(shifted[name], expected)


@pytest.mark.parametrize("model", ["linear", "logistic"])
def test_a_regression_starts_with_every_weight_at_the_start_value(model):
    plain = arrays(build(model).params)
    assert np.all(plain["weights"] == 0.0) and plain["bias"] == 0.0
    params = arrays(build(model, start={"weights": -1.5, "bias": 2.0}).params)
    np.testing.assert_array_equal(params["weights"], np.full(3, -1.5))
    assert params["bias"] == 2.0


def test_an_offset_for_a_layer_the_mlp_lacks_is_refused():
    with pytest.raises(ValueError, match="start.layer2 is given but the mlp has depth"):
        build("mlp", start={"layer2": 0.1}, depth=2)


# Tracing: number settings and start values may be traced.

TRACED = [
    ("mlp", lambda x: ({"layer0": x}, {})),
    ("mlp", lambda x: ({"layer1": x}, {"activation": "relu"})),
    ("uv", lambda x: ({"u": x}, {"target": 2 * x})),
    ("linear", lambda x: ({"weights": x}, {"noise": x**2})),
    ("logistic", lambda x: ({"bias": x}, {"noise": x / 2})),
]


@pytest.mark.parametrize("model, place", TRACED)
def test_build_runs_under_jit_and_vmap_over_traced_numbers(model, place):
    values = [0.1, 0.4, 0.9]

    def loss_and_gradient(x):
        start, settings = place(x)
        problem = build(model, start=start, **settings)
        loss, grad = jax.value_and_grad(problem.loss)(problem.params)
        return loss, ravel_pytree(grad)[0]

    swept = jax.jit(jax.vmap(loss_and_gradient))(jnp.asarray(values))
    for index, value in enumerate(values):
        alone = loss_and_gradient(value)
        np.testing.assert_allclose(swept[0][index], alone[0], rtol=1e-12)
        np.testing.assert_allclose(swept[1][index], alone[1], rtol=1e-10)
    assert len(set(np.asarray(swept[0]).tolist())) == 3  # the value got through


@pytest.mark.parametrize("model", ["mlp", "linear", "logistic"])
def test_a_swept_data_ratio_is_refused_with_the_fix(model):
    def loss(ratio):
        problem = build(model, data_ratio=ratio)
        return problem.loss(problem.params)

    with pytest.raises(ValueError, match="cannot be swept; give it one value"):
        jax.jit(loss)(1.0)


# The mlp is the paper's network.


def paper_network(weights, inputs, activation):
    """The notebook's ``net``: 1/sqrt(n) before each nonlinearity, 1/n readout."""
    phi = {
        "tanh": lambda z: np.tanh(math.sqrt(2) * z),
        "relu": lambda z: math.sqrt(2) * np.maximum(z, 0.0),
        "identity": lambda z: z,
    }[activation]
    hidden, width = inputs, inputs.shape[1]
    for w in weights[:-1]:
        hidden = phi(hidden @ w / math.sqrt(width))
    return hidden @ weights[-1] / width


@pytest.mark.parametrize(
    "activation, depth", [("tanh", 2), ("relu", 2), ("identity", 2), ("tanh", 3)]
)
def test_the_mlp_loss_is_the_papers_mean_squared_error(activation, depth):
    settings = {"depth": depth, "activation": activation, "seed": 1}
    problem = build("mlp", start={"layer0": 0.2}, **settings)
    data = models.mlp_data(small("mlp", **settings), F64)
    inputs, targets = (np.asarray(a) for a in data)
    params = arrays(problem.params)
    weights = [params[f"layer{i}"] for i in range(depth)]
    output = paper_network(weights, inputs, activation)
    expected = np.mean((output - targets) ** 2)
    np.testing.assert_allclose(problem.loss(problem.params), expected, rtol=1e-12)


def test_the_mlp_draws_weights_inputs_and_targets_from_a_standard_normal():
    settings = small("mlp", width=16, seed=2)
    weights = np.asarray(build("mlp", **settings).params["layer0"])
    for sample in (weights, *(np.asarray(a) for a in models.mlp_data(settings))):
        assert abs(sample.mean()) < 5 / math.sqrt(sample.size)
        assert abs(sample.std() - 1) < 5 / math.sqrt(sample.size)


# The uv model and its catapult.


def uv_output(params):
    return params["v"] @ params["u"] / jnp.sqrt(params["u"].shape[0])


@pytest.mark.parametrize("target", [0.0, 0.7, -2.0])
def test_uv_output_at_start_is_v_dot_u_over_root_n(target):
    problem = build("uv", start={"u": 0.1}, target=target, seed=5)
    u, v = (np.asarray(problem.params[k]) for k in ("u", "v"))
    output = v @ u / 4.0  # sqrt(16)
    assert abs(output) > 0.1
    expected = (output - target) ** 2 / 2
    np.testing.assert_allclose(problem.loss(problem.params), expected, rtol=1e-13)


@pytest.mark.parametrize("seed, u, v", [(0, 0.0, 0.0), (3, 0.3, -0.2)])
def test_uv_curvature_is_the_top_gauss_newton_eigenvalue(seed, u, v):
    params = build("uv", start={"u": u, "v": v}, seed=seed).params
    flat, unravel = ravel_pytree(params)
    jacobian = jax.jit(jax.jacobian(lambda x: uv_output(unravel(x))))(flat)
    gauss_newton = np.outer(jacobian, jacobian)
    top = np.linalg.eigvalsh(gauss_newton)[-1]
    np.testing.assert_allclose(models.uv_curvature(16, seed, u=u, v=v), top, rtol=1e-12)

    # Where f = y the loss Hessian is exactly the Gauss-Newton matrix.
    fitted = float(uv_output(params))
    problem = build("uv", start={"u": u, "v": v}, seed=seed, target=fitted)
    hessian = jax.jit(jax.hessian(lambda x: problem.loss(unravel(x))))(flat)
    np.testing.assert_allclose(hessian, gauss_newton, rtol=1e-10, atol=1e-14)


def test_uv_shows_the_three_catapult_regimes():
    """lr * lambda_0 below 2 descends, from 2 to 4 catapults, above 4 diverges."""
    problem = build("uv", width=512)
    curvature = models.uv_curvature(512, 0)

    @jax.jit
    def step(params, learning_rate):
        loss, grad = jax.value_and_grad(problem.loss)(params)
        return jax.tree.map(lambda p, g: p - learning_rate * g, params, grad), loss

    def descend(rate_times_curvature, steps=100):
        params, losses = problem.params, []
        for _ in range(steps):
            params, loss = step(params, rate_times_curvature / curvature)
            losses.append(float(loss))
        flat = np.asarray(ravel_pytree(params)[0])
        return np.array(losses), float(flat @ flat) / 512

    calm, _ = descend(1.0)
    catapult, landed = descend(3.0)
    blowup, _ = descend(5.0)
    assert np.all(np.diff(calm) <= 0) and calm[-1] < 1e-12 * calm[0]
    assert catapult[1] > catapult[0] and catapult.max() > 100 * catapult[0]
    assert catapult[-1] < 1e-6 * catapult[0]
    assert landed * 3.0 / curvature < 2  # it lands where the rate is stable
    assert not np.isfinite(blowup[-1]) or blowup[-1] > 1e10 * blowup[0]


# Linear and logistic regression.


@pytest.mark.parametrize("settings", [{}, {"noise": 1.0, "seed": 7}, {"noise": 0.0}])
def test_linear_gradient_vanishes_at_the_least_squares_solution(settings):
    problem = build("linear", **settings)
    data = models.linear_data(small("linear", **settings), F64)
    inputs, targets = (np.asarray(a) for a in data)
    design = np.hstack([inputs, np.ones((len(inputs), 1))])
    solution, residual, *_ = np.linalg.lstsq(design, targets, rcond=None)
    best = {"weights": jnp.asarray(solution[:-1]), "bias": jnp.asarray(solution[-1])}
    gradient = ravel_pytree(jax.grad(problem.loss)(best))[0]
    assert np.max(np.abs(gradient)) < 1e-12
    noisy = small("linear", **settings)["noise"] > 0
    expected = residual[0] / (2 * len(targets)) if noisy else 0.0
    np.testing.assert_allclose(problem.loss(best), expected, rtol=1e-9, atol=1e-24)
    assert problem.loss(problem.params) > problem.loss(best) + 0.1


def test_linear_noise_scales_one_standard_normal_draw():
    def targets(noise):
        settings = small("linear", data_ratio=2500.0, noise=noise)
        return np.asarray(models.linear_data(settings, F64)[1])

    clean, eps = targets(0.0), targets(1.0) - targets(0.0)
    np.testing.assert_allclose(targets(0.3) - clean, 0.3 * eps, atol=1e-12)
    assert abs(eps.mean()) < 5 / math.sqrt(eps.size)
    assert abs(eps.std() - 1) < 5 / math.sqrt(2 * eps.size)


@pytest.mark.parametrize("settings", [{}, {"noise": 0.0, "seed": 3}, {"dim": 8}])
def test_logistic_loss_at_zero_is_log_2(settings):
    problem = build("logistic", **settings)
    assert problem.loss(problem.params) == pytest.approx(math.log(2), rel=1e-15)


def test_logistic_gradient_matches_finite_differences():
    problem = build("logistic")
    flat = jnp.asarray(np.random.default_rng(0).normal(size=4))
    _, unravel = ravel_pytree(problem.params)
    loss = jax.jit(lambda x: problem.loss(unravel(x)))
    step = 1e-6
    numeric = [(loss(flat + e) - loss(flat - e)) / (2 * step) for e in np.eye(4) * step]
    analytic = jax.grad(loss)(flat)
    np.testing.assert_allclose(analytic, numeric, atol=1e-9)
    assert np.max(np.abs(analytic)) > 1e-3


def test_logistic_loss_stays_finite_at_huge_weights():
    problem = build("logistic", F32)
    params = {"weights": jnp.full(3, 1e4, F32), "bias": jnp.asarray(-1e4, F32)}
    loss = problem.loss(params)
    assert np.isfinite(loss) and loss > 100


def test_logistic_labels_flip_with_probability_noise():
    def labels(noise):
        settings = small("logistic", data_ratio=400.0, noise=noise)
        return np.asarray(models.logistic_data(settings)[1])

    clean = labels(0.0)
    assert set(np.unique(clean)) == {-1.0, 1.0}
    for noise in (0.0, 0.2, 0.5):
        flipped = np.mean(labels(noise) != clean)
        assert abs(flipped - noise) < 5 * math.sqrt(0.25 / clean.size)


# Minibatches.


@pytest.mark.parametrize("model", ALL)
def test_full_batch_has_no_step_loss(model):
    assert build(model).step_loss is None


@pytest.mark.parametrize(
    "model, batch_size", [("mlp", 6), ("linear", 4), ("logistic", 4)]
)
def test_each_epoch_of_minibatches_covers_the_data_once(model, batch_size):
    start = {"layer0": 0.1} if model == "mlp" else {"weights": 0.2, "bias": 0.3}
    problem = build(model, start=start, batch_size=batch_size)
    count = DATA[model](small(model))[0].shape[0]
    assert count % batch_size == 0
    per_epoch = count // batch_size
    steps = jnp.arange(3 * per_epoch, dtype=jnp.int32)
    losses = jax.jit(jax.vmap(problem.step_loss, (None, 0)))(problem.params, steps)
    losses = np.asarray(losses).reshape(3, per_epoch)
    assert np.unique(losses).size == losses.size  # each step its own batch
    # The loss is a mean, so an epoch's batches average to the full loss
    # exactly when they hold each point once.
    full = problem.loss(problem.params)
    np.testing.assert_allclose(losses.mean(axis=1), full, rtol=1e-12)


def test_batches_are_drawn_without_replacement_at_even_frequency():
    count, batch_size, epochs = 10, 3, 1000  # 3 batches an epoch: 1 point sits out
    key = jax.random.key(4)
    draw = jax.jit(jax.vmap(lambda t: models.batch_indices(key, t, count, batch_size)))
    drawn = np.asarray(draw(jnp.arange(3 * epochs))).reshape(epochs, 3 * batch_size)
    assert all(np.unique(epoch).size == 3 * batch_size for epoch in drawn)
    assert len({tuple(epoch) for epoch in drawn}) > epochs // 2  # fresh orders
    frequency = np.bincount(drawn.ravel(), minlength=count) / epochs
    np.testing.assert_allclose(frequency, 0.9, atol=5 * math.sqrt(0.09 / epochs))


def test_a_batch_larger_than_the_data_is_refused():
    with pytest.raises(ValueError, match="has 272 data points"):
        build("mlp", width=16, batch_size=273)


def test_catapult_sweep_shows_the_papers_three_regimes():
    """Lewkowycz et al. (2020) at width 1024, through the whole engine."""
    import dynamics
    from dynamics import Regime

    config = Path(__file__).parent.parent / "configs" / "catapult.yaml"
    ds = dynamics.run(config, overrides=["sweep.optimizer.learning_rate.num=60"])
    lam = models.uv_curvature(1024, 0)
    product = ds["optimizer.learning_rate"].values * lam
    regime = ds["regime"].values
    rose = ds["max_loss"].values > ds["initial_loss"].values
    calm, catapult, wild = (
        product < 1.95,
        (product > 2.05) & (product < 3.95),
        (product > 4.05),
    )
    assert calm.sum() > 5 and catapult.sum() > 5 and wild.sum() > 5
    assert (regime[calm] == Regime.CONVERGED).all() and not rose[calm].any()
    assert (regime[catapult] == Regime.CONVERGED).all() and rose[catapult].all()
    assert (regime[wild] == Regime.DIVERGED).all()
