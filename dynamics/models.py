"""Models on generated data: ``objective: {model: ...}``.

Four families, each registered in :data:`dynamics.objectives.MODELS`:

- ``mlp``: the bias-free mean-field network of Sohl-Dickstein (2024), "The
  boundary of neural network trainability is fractal" (arXiv:2402.06184);
- ``uv``: the two-layer linear model of Lewkowycz, Bahri, Dyer, Sohl-Dickstein
  and Gur-Ari (2020), "The large learning rate phase of deep learning: the
  catapult mechanism" (arXiv:2003.02218), section 2;
- ``linear``: least squares on Gaussian data;
- ``logistic``: logistic regression on Gaussian data with flipped labels.

Conventions shared by all four:

- Data and initial weights are drawn from ``jax.random.key(seed)`` in float32
  and then cast to the run's dtype, so a seed names the same problem in
  float32 and float64. They are drawn once, while the sweep is traced, and
  enter the compiled program as constants shared by every run.
- ``data_ratio`` counts data points per parameter: a model with P parameters
  gets ``max(1, round(data_ratio * P))`` points. It fixes array shapes, so it
  is read once per config and cannot be swept.
- With ``batch_size`` B > 0, step t descends the mean loss over B points: the
  data are shuffled afresh each epoch of ``N // B`` steps (a permutation drawn
  from the seed and the epoch index) and step t takes the next B of them, so
  within an epoch no point is drawn twice. When B does not divide N, the
  ``N % B`` points at the end of each permutation sit that epoch out. The
  recorded ``loss`` is always the full-data loss. (The paper's notebook
  instead draws each minibatch with replacement.)

The ``mlp`` follows the paper's notebook
(``the_boundary_of_neural_network_trainability_is_fractal.ipynb`` in
github.com/Sohl-Dickstein/fractal, functions ``net``, ``init`` and ``loss``)
and the paper's section 2: inputs of dimension ``width``, one target per
input (``target_dim = 1``), weights N(0, 1), every hidden layer
``h = phi(g * h W / sqrt(n))`` with gain g = sqrt(2) for tanh and relu and 1
for identity, and a readout ``h W / n`` (the mean-field 1/n), trained on the
mean of squared errors without a factor 1/2. Its data count follows this
package's rule above; the notebook instead truncates
``n_params * ratio`` and, for the identity network, uses ``width * ratio``.
The paper's second map offsets the first layer's initial weights; here every
layer has such an offset in ``start``, added once at initialization (the
notebook's ``train_step`` adds it again at every step).

The ``uv`` model is the paper's f = v.u x / sqrt(n) with one example x = 1,
loss (f - y)^2 / 2 and NTK lambda = (|u|^2 + |v|^2) / n; see
:func:`uv_curvature` for its three regimes.

>>> import numpy as np
>>> from dynamics.objectives import MODELS
>>> family = MODELS["mlp"]
>>> settings = {key: s.default for key, s in family.settings.items()}
>>> start = {key: s.default for key, s in family.start.items()}
>>> problem = family.build(settings, start, np.dtype("float32"))
>>> {name: w.shape for name, w in problem.params.items()}
{'layer0': (16, 16), 'layer1': (16, 1)}
>>> mlp_data(settings)[0].shape  # 272 parameters, one point per parameter
(272, 16)
"""

import functools
import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from dynamics.objectives import MODELS, Family, Problem, Setting, at_least, positive

#: The deepest ``mlp``: ``start`` lists an offset for each of this many layers.
MLP_MAX_DEPTH = 8

_ACTIVATIONS = {
    "tanh": (jax.nn.tanh, math.sqrt(2.0)),
    "relu": (jax.nn.relu, math.sqrt(2.0)),
    "identity": (lambda z: z, 1.0),
}


# Shared pieces.


def data_count(data_ratio, parameters: int, model: str) -> int:
    """How many data points a model with ``parameters`` parameters draws.

    Raises:
      ValueError: when ``data_ratio`` is traced, that is, swept.
    """
    # A type test, not a value test: a swept ratio would have to shape arrays.
    if isinstance(data_ratio, jax.core.Tracer):
        raise ValueError(
            f"objective.data_ratio of model '{model}' sets how many data points "
            "are drawn, which fixes array shapes, so it cannot be swept; give it "
            "one value per config and sweep the learning rate, start or noise"
        )
    return max(1, round(float(data_ratio) * parameters))


def batch_indices(key: jax.Array, t, count: int, batch_size: int) -> jax.Array:
    """The data indices of step ``t``'s minibatch.

    Epoch ``e = t // (count // batch_size)`` shuffles the data with a
    permutation drawn from ``fold_in(key, e)``; step ``t`` takes the
    ``batch_size`` indices at its place in that epoch.

    >>> key = jax.random.key(0)
    >>> epoch = [batch_indices(key, t, 6, 2) for t in range(3)]
    >>> sorted(int(i) for batch in epoch for i in batch)
    [0, 1, 2, 3, 4, 5]
    """
    steps_per_epoch = count // batch_size
    epoch, place = jnp.divmod(jnp.asarray(t, jnp.int32), steps_per_epoch)
    order = jax.random.permutation(jax.random.fold_in(key, epoch), count)
    return jax.lax.dynamic_slice_in_dim(order, place * batch_size, batch_size)


def _at_trace_time(draw: Callable) -> Callable:
    """Runs ``draw`` eagerly, even while a sweep is being traced.

    Draws depend only on the integer seed. Made when the program is traced,
    they enter it as constants: the random-number code stays out of the
    compiled sweep, and every run gets the same arrays without redrawing them.
    """

    @functools.wraps(draw)
    def eager(*args, **kwargs):
        with jax.ensure_compile_time_eval():
            return draw(*args, **kwargs)

    return eager


def _drawn(sample, key, shape):
    # Draws a power of two (at least 1024) and keeps the first prod(shape):
    # arrays of every size then share a few samplers, which are slow to compile.
    size = math.prod(shape)
    flat = sample(key, (max(1024, 1 << (size - 1).bit_length()),), jnp.float32)
    return flat[:size].reshape(shape)


@_at_trace_time
def _normal(key, shape, dtype):
    return _drawn(jax.random.normal, key, shape).astype(dtype)


@_at_trace_time
def _keys(seed, count):
    return tuple(jax.random.split(jax.random.key(seed), count))


@_at_trace_time
def _uniform(key, shape):
    return _drawn(jax.random.uniform, key, shape)


@_at_trace_time
def _fold_in(key, index):
    return jax.random.fold_in(key, index)


def _losses(mean_loss: Callable, data, settings: Mapping, key, model: str):
    """The full-data loss and the minibatch ``step_loss`` (None for full batch)."""
    inputs, targets = data
    count, batch_size = inputs.shape[0], settings["batch_size"]

    def loss(params):
        return mean_loss(params, inputs, targets)

    if batch_size == 0:
        return loss, None
    if batch_size > count:
        raise ValueError(
            f"objective.batch_size is {batch_size} but model '{model}' has "
            f"{count} data points (data_ratio {settings['data_ratio']:g}); use a "
            f"batch size of at most {count}, or 0 for full batch"
        )

    def step_loss(params, t):
        index = batch_indices(key, t, count, batch_size)
        return mean_loss(params, inputs[index], targets[index])

    return loss, step_loss


def _integer(default, minimum, what):
    return Setting(default, "integer", at_least(minimum, what), help=what)


def _seed():
    return Setting(0, "integer", at_least(0, "a seed"), help="seed of data and init")


def _batch_size():
    return Setting(
        0,
        "integer",
        at_least(0, "a batch size"),
        help="points per step, drawn without replacement each epoch; 0 = full batch",
    )


def _data_ratio(default):
    return Setting(
        default,
        "real",
        positive("data points per parameter"),
        help="data points per parameter (rounded, at least 1); fixed, not sweepable",
    )


# The mean-field network of Sohl-Dickstein (2024).


def mlp_data(settings: Mapping, dtype=np.float32) -> tuple[jax.Array, jax.Array]:
    """The inputs (N, width) and targets (N, 1) an ``mlp`` trains on, N(0, 1)."""
    width, depth = settings["width"], settings["depth"]
    count = data_count(
        settings["data_ratio"], width * width * (depth - 1) + width, "mlp"
    )
    _, input_key, target_key, _ = _keys(settings["seed"], 4)
    return (
        _normal(input_key, (count, width), dtype),
        _normal(target_key, (count, 1), dtype),
    )


def _depth_check(value):
    if 1 <= value <= MLP_MAX_DEPTH:
        return None
    return f"must be between 1 and {MLP_MAX_DEPTH} (weight layers)"


def _mlp_build(settings, start, dtype):
    width, depth = settings["width"], settings["depth"]
    act, gain = _ACTIVATIONS[settings["activation"]]
    for layer in range(depth, MLP_MAX_DEPTH):
        offset = start[f"layer{layer}"]
        if isinstance(offset, jax.core.Tracer) or offset != 0:
            raise ValueError(
                f"start.layer{layer} is given but the mlp has depth {depth} "
                f"(layers layer0 to layer{depth - 1}); drop it or raise depth"
            )

    data = mlp_data(settings, dtype)
    init_key, _, _, batch_key = _keys(settings["seed"], 4)
    params = {}
    for layer in range(depth):
        shape = (width, width if layer < depth - 1 else 1)
        weights = _normal(_fold_in(init_key, layer), shape, dtype)
        params[f"layer{layer}"] = weights + jnp.asarray(start[f"layer{layer}"], dtype)

    def mean_loss(params, inputs, targets):
        # Units by data points, data along the last axis: vmapped over runs,
        # the first layer is then one large product with the shared inputs,
        # and every later array keeps the layout the runs already have (the
        # textbook data-by-units form makes XLA transpose each run's hidden
        # units at every step, which took half the time).
        hidden = inputs.T
        for layer in range(depth - 1):
            weights = params[f"layer{layer}"]
            hidden = act(gain * (weights.T @ hidden) / math.sqrt(width))
        output = params[f"layer{depth - 1}"][:, 0] @ hidden / width
        return jnp.mean((output - targets[:, 0]) ** 2)

    loss, step_loss = _losses(mean_loss, data, settings, batch_key, "mlp")
    return Problem(params=params, loss=loss, step_loss=step_loss)


#: Bytes a model holds per scalar parameter beyond its value: the parameter's
#: name in the results (``engine.parameter_names``) and its copies in a run.
PER_PARAMETER = 128
#: Copies of the generated data held at once: a draw rounded up to a power of
#: two (see _drawn), cut, cast, and embedded in the compiled program.
DATA_COPIES = 8


def _bytes(parameters, data, itemsize):
    """About the memory a model of ``parameters`` and ``data`` values takes."""
    return parameters * (PER_PARAMETER + 2 * itemsize) + DATA_COPIES * data * itemsize


def _mlp_footprint(settings, itemsize):
    width, depth = settings["width"], settings["depth"]
    parameters = width * width * (depth - 1) + width
    count = data_count(settings["data_ratio"], parameters, "mlp")
    size = _bytes(parameters, count * (width + 1), itemsize)
    words = (
        f"an mlp of width {width:,} and depth {depth} has {parameters:,} "
        f"parameters and {count:,} data points of {width:,} inputs"
    )
    return size, words, "lower objective.width, objective.depth or objective.data_ratio"


MODELS["mlp"] = Family(
    summary=(
        "Bias-free mean-field network of Sohl-Dickstein (2024), 'The boundary of "
        "neural network trainability is fractal': h_0 = x, h_{l+1} = "
        "phi(g h_l W_l / sqrt(n)) (g = sqrt(2) for tanh and relu, 1 for "
        "identity), output h W_last / n, weights N(0, 1), inputs and targets "
        "N(0, 1) in R^n and R, loss mean (output - y)^2."
    ),
    settings={
        "width": _integer(16, 1, "n, the width of the input and of every hidden layer"),
        "depth": Setting(
            2,
            "integer",
            _depth_check,
            help="number of weight layers (2: one hidden layer, as in the paper)",
        ),
        "activation": Setting(
            "tanh",
            "choice",
            choices=tuple(_ACTIVATIONS),
            help="the nonlinearity phi of the hidden layers",
        ),
        "data_ratio": _data_ratio(1.0),
        "batch_size": _batch_size(),
        "seed": _seed(),
    },
    start={
        f"layer{layer}": Setting(
            0.0, help=f"offset added to every initial weight of layer {layer}"
        )
        for layer in range(MLP_MAX_DEPTH)
    },
    build=_mlp_build,
    footprint=_mlp_footprint,
)


# The catapult model of Lewkowycz et al. (2020).


def _uv_init(width, seed, dtype):
    u_key, v_key = _keys(seed, 2)
    return _normal(u_key, (width,), dtype), _normal(v_key, (width,), dtype)


def uv_curvature(
    width: int, seed: int, dtype=np.float64, *, u: float = 0.0, v: float = 0.0
) -> float:
    """lambda_0 = (|u|^2 + |v|^2) / n, the ``uv`` model's NTK at its start.

    For one example x = 1 it is the only nonzero eigenvalue of the
    Gauss-Newton matrix grad f grad f^T. Gradient descent with learning rate
    eta converges with a falling loss when eta * lambda_0 < 2, rises then
    converges (the catapult) when 2 < eta * lambda_0 < 4, and diverges beyond
    4 (at target 0 and large n). ``u`` and ``v`` are the ``start`` offsets.

    >>> lambda_0 = uv_curvature(512, seed=0)  # the family's defaults
    >>> round(lambda_0, 3), round(2 / lambda_0, 3)  # and the critical rate
    (2.094, 0.955)
    """
    u0, v0 = _uv_init(width, seed, jnp.float32)
    u0 = np.asarray(u0, dtype) + np.asarray(u, dtype)
    v0 = np.asarray(v0, dtype) + np.asarray(v, dtype)
    return float((u0 @ u0 + v0 @ v0) / width)


def _uv_build(settings, start, dtype):
    width = settings["width"]
    u0, v0 = _uv_init(width, settings["seed"], dtype)
    params = {
        "u": u0 + jnp.asarray(start["u"], dtype),
        "v": v0 + jnp.asarray(start["v"], dtype),
    }
    target = jnp.asarray(settings["target"], dtype)

    def loss(params):
        output = params["v"] @ params["u"] / math.sqrt(width)
        return (output - target) ** 2 / 2

    return Problem(params=params, loss=loss)


MODELS["uv"] = Family(
    summary=(
        "Catapult model of Lewkowycz et al. (2020), 'The large learning rate "
        "phase of deep learning': f = v.u / sqrt(n) with u, v in R^n drawn "
        "N(0, 1), one example x = 1, loss (f - y)^2 / 2. With lambda_0 = "
        "(|u|^2 + |v|^2) / n, learning rates below 2 / lambda_0 converge, "
        "between 2 / lambda_0 and 4 / lambda_0 catapult, above diverge."
    ),
    settings={
        "width": Setting(
            512, "integer", at_least(1, "a width"), help="n, length of u, v"
        ),
        "target": Setting(0.0, help="y, the target of the one example x = 1"),
        "seed": _seed(),
    },
    start={
        "u": Setting(0.0, help="offset added to every entry of the initial u"),
        "v": Setting(0.0, help="offset added to every entry of the initial v"),
    },
    build=_uv_build,
    footprint=lambda settings, itemsize: (
        _bytes(2 * settings["width"], 0, itemsize),
        f"the uv model of width {settings['width']:,}",
        "lower objective.width",
    ),
)


# Linear and logistic regression.


def _regression_keys(seed):
    """Keys for the inputs, w*, b*, the noise or flips, and the minibatches."""
    return _keys(seed, 5)


@_at_trace_time
def _regression_draws(settings, dtype, model):
    dim = settings["dim"]
    count = data_count(settings["data_ratio"], dim + 1, model)
    keys = _regression_keys(settings["seed"])
    inputs = _normal(keys[0], (count, dim), dtype)
    true_weights = _normal(keys[1], (dim,), dtype)
    true_bias = _normal(keys[2], (), dtype)
    return inputs, inputs @ true_weights + true_bias, keys[3]


def linear_data(settings: Mapping, dtype=np.float32) -> tuple[jax.Array, jax.Array]:
    """Inputs X (N, dim) N(0, 1) and targets y = X w* + b* + noise * eps (N,)."""
    inputs, clean, noise_key = _regression_draws(settings, dtype, "linear")
    noise = jnp.asarray(settings["noise"], dtype)
    return inputs, clean + noise * _normal(noise_key, clean.shape, dtype)


def logistic_data(settings: Mapping, dtype=np.float32) -> tuple[jax.Array, jax.Array]:
    """Inputs X (N, dim) N(0, 1) and labels in {-1, +1}: sign(X w* + b*), each
    flipped with probability ``noise``."""
    inputs, clean, flip_key = _regression_draws(settings, dtype, "logistic")
    flipped = _uniform(flip_key, clean.shape) < settings["noise"]
    labels = jnp.where(clean > 0, 1.0, -1.0).astype(dtype)
    return inputs, jnp.where(flipped, -labels, labels)


def _regression_footprint(name):
    def footprint(settings, itemsize):
        dim = settings["dim"]
        count = data_count(settings["data_ratio"], dim + 1, name)
        size = _bytes(dim + 1, count * (dim + 2), itemsize)
        words = f"{name} regression of dim {dim:,} has {count:,} data points"
        return size, words, "lower objective.dim or objective.data_ratio"

    return footprint


def _regression_build(name, make_data, mean_loss):
    def build(settings, start, dtype):
        dim = settings["dim"]
        params = {
            "weights": jnp.broadcast_to(jnp.asarray(start["weights"], dtype), (dim,)),
            "bias": jnp.asarray(start["bias"], dtype),
        }
        data = make_data(settings, dtype)
        batch_key = _regression_keys(settings["seed"])[4]
        loss, step_loss = _losses(mean_loss, data, settings, batch_key, name)
        return Problem(params=params, loss=loss, step_loss=step_loss)

    return build


def _squared_error(params, inputs, targets):
    residual = inputs @ params["weights"] + params["bias"] - targets
    return jnp.mean(residual**2) / 2


def _log_loss(params, inputs, labels):
    # -log sigmoid(y z) = softplus(-y z), finite for every z.
    return jnp.mean(
        jax.nn.softplus(-labels * (inputs @ params["weights"] + params["bias"]))
    )


def _flip_probability(value):
    return None if 0 <= value <= 0.5 else "must be between 0 and 0.5 (a probability)"


def _regression_settings(noise):
    return {
        "dim": _integer(8, 1, "dimension of the inputs"),
        "data_ratio": _data_ratio(4.0),
        "noise": noise,
        "batch_size": _batch_size(),
        "seed": _seed(),
    }


_REGRESSION_START = {
    "weights": Setting(0.0, help="the value every initial weight starts at"),
    "bias": Setting(0.0, help="the initial bias"),
}

MODELS["linear"] = Family(
    summary=(
        "Least squares on generated data: X ~ N(0, 1) with dim columns, "
        "y = X w* + b* + noise * eps with w*, b*, eps ~ N(0, 1), loss "
        "mean (X w + b - y)^2 / 2."
    ),
    settings=_regression_settings(
        Setting(0.1, check=at_least(0, "a noise scale"), help="std of the label noise")
    ),
    start=_REGRESSION_START,
    build=_regression_build("linear", linear_data, _squared_error),
    footprint=_regression_footprint("linear"),
)

MODELS["logistic"] = Family(
    summary=(
        "Logistic regression on generated data: X ~ N(0, 1) with dim columns, "
        "labels s = sign(X w* + b*) with w*, b* ~ N(0, 1), each flipped with "
        "probability noise, loss mean softplus(-s (X w + b))."
    ),
    settings=_regression_settings(
        Setting(0.1, check=_flip_probability, help="probability of flipping a label")
    ),
    start=_REGRESSION_START,
    build=_regression_build("logistic", logistic_data, _log_loss),
    footprint=_regression_footprint("logistic"),
)
