"""Sharpness: the top Hessian eigenvalue along a path, and the edge of stability.

Gradient descent with learning rate η is stable on a quadratic only while every
Hessian eigenvalue is below 2/η. On neural networks the top eigenvalue (the
*sharpness*) tends to rise during training until it reaches 2/η and then hovers
there while the loss keeps falling, non-monotonically: the edge of stability of
Cohen, Kaur, Li, Kolter and Talwalkar (2021), arXiv:2103.00065. Momentum moves
the threshold; Adam's threshold applies to the *preconditioned* sharpness
(Cohen et al. 2022, arXiv:2207.14484).

Everything here is pure JAX with fixed iteration counts, so it runs under
``jit`` and ``vmap`` and inside ``lax.scan`` and ``lax.cond``: the engine may
call :func:`top_eigenvalue` every k steps of every run.

>>> import jax.numpy as jnp
>>> def loss(p):
...     return p["w"][0] ** 2 + 3 * p["w"][1] ** 2 - p["w"][2] ** 2
>>> value, vector = top_eigenvalue(loss, {"w": jnp.zeros(3)})
>>> round(float(value), 4)  # the Hessian is diag(2, 6, -2)
6.0
"""

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from dynamics import objectives, optimizers
from dynamics.config import Experiment, load_config

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Up to this many parameters the Hessian is formed whole and diagonalised;
#: above it, Lanczos.
EXACT_LIMIT = 32

# Optimizers whose state holds optax's ScaleByAdamState. (optax's nadam and
# nadamw are adam and adamw with nesterov=True, not separate names here.)
_ADAM_FAMILY = ("adam", "adamw")

PyTree = Any


def top_eigenvalue(
    loss: Callable[[PyTree], jax.Array],
    params: PyTree,
    *,
    iterations: int = 20,
    vector: PyTree | None = None,
) -> tuple[jax.Array, PyTree]:
    """The largest eigenvalue of the Hessian of ``loss`` at ``params``.

    The largest algebraic eigenvalue, not the largest in magnitude: at a saddle
    whose Hessian is diag(1, −5) it is 1. The Hessian is reached only through
    Hessian-vector products (forward-over-reverse, ``jax.jvp`` of
    ``jax.grad``), so it is never stored above :data:`EXACT_LIMIT` parameters.

    Up to :data:`EXACT_LIMIT` parameters, the Hessian is built from P products
    with the unit vectors and diagonalised: the answer is exact and
    ``iterations`` and ``vector`` are unused. Above it, ``iterations`` steps of
    Lanczos with full reorthogonalisation: each step takes one product and
    orthogonalises it twice against every earlier direction, and the answer is
    the largest eigenvalue of the projection QᵀHQ onto the directions found,
    which is never above the true one and converges to it quickly when the top
    eigenvalue stands apart from the rest (the usual case for networks). If
    the directions span an invariant subspace early (a breakdown), the next
    one is a fixed pseudo-random vector orthogonal to them, so the projection
    stays valid. Lanczos rather than power iteration: power iteration finds
    the eigenvalue of largest magnitude, needs a shift to find the largest
    algebraic one, and converges with the ratio of eigenvalues instead of
    (roughly) its square root.

    Args:
      loss: a scalar function of a parameter pytree.
      params: where to take the Hessian; a pytree of floating arrays.
      iterations: Lanczos steps, a Python int (Hessian-vector products per
        call); capped at the parameter count.
      vector: a starting direction shaped like ``params``, typically the
        eigenvector this function returned a few optimizer steps earlier:
        along a path the top eigenvector changes slowly, so a warm start needs
        few iterations. None, or an all-zero or non-finite vector, starts from
        a fixed pseudo-random direction instead, so a scan may carry zeros at
        first.

    Returns:
      ``(value, vector)``: the eigenvalue, a scalar of the parameters' dtype,
      and a unit eigenvector (up to sign) shaped like ``params``.

    >>> import jax.numpy as jnp
    >>> spectrum = jnp.linspace(-3.0, 1.0, 100).at[-1].set(2.0)  # 100: Lanczos
    >>> def quadratic(w):
    ...     return 0.5 * jnp.sum(spectrum * w**2)
    >>> value, vector = top_eigenvalue(quadratic, jnp.ones(100))
    >>> round(float(value), 4), round(abs(float(vector[-1])), 4)
    (2.0, 1.0)
    """
    flat, unravel = ravel_pytree(params)
    size = flat.shape[0]

    def flat_loss(x):
        return loss(unravel(x))

    def hvp(direction):
        return jax.jvp(jax.grad(flat_loss), (flat,), (direction,))[1]

    if size <= EXACT_LIMIT:
        hessian = jax.vmap(hvp)(jnp.eye(size, dtype=flat.dtype))
        values, vectors = jnp.linalg.eigh((hessian + hessian.T) / 2)
        return values[-1], unravel(vectors[:, -1])

    start = None if vector is None else ravel_pytree(vector)[0].astype(flat.dtype)
    value, top = _lanczos(hvp, start, size, min(iterations, size), flat.dtype)
    return value, unravel(top)


def _lanczos(hvp, start, size, steps, dtype):
    """Rayleigh–Ritz on the Krylov space of ``steps`` directions from ``start``."""
    key = jax.random.key(0)

    def fresh(index):
        return jax.random.normal(jax.random.fold_in(key, index), (size,), dtype)

    def unit(x, fallback):
        norm = jnp.linalg.norm(x)
        usable = (norm > 0) & jnp.isfinite(norm)
        return jnp.where(usable, x / jnp.where(usable, norm, 1), fallback)

    def orthogonalised(x, basis):
        # Twice: one classical Gram–Schmidt pass leaves an error proportional
        # to how much of x it removed; the second pass removes that.
        x = x - basis.T @ (basis @ x)
        return x - basis.T @ (basis @ x)

    random_start = fresh(steps)
    random_start = random_start / jnp.linalg.norm(random_start)
    first = random_start if start is None else unit(start, random_start)
    # One row more than the steps: the last step writes its successor there,
    # unused, instead of clamping onto (and overwriting) the last real row.
    basis = jnp.zeros((steps + 1, size), dtype).at[0].set(first)
    projection = jnp.zeros((steps, steps), dtype)
    tolerance = math.sqrt(float(jnp.finfo(dtype).eps))

    def body(j, carry):
        basis, projection = carry
        image = hvp(basis[j])
        # Rows after j are still zero, so this column holds q_i·Hq_j for i ≤ j.
        column = basis @ image
        projection = projection.at[:, j].set(column[:steps])
        residual = orthogonalised(image - basis.T @ column, basis)
        residual_norm = jnp.linalg.norm(residual)
        broken = ~(residual_norm > tolerance * jnp.linalg.norm(image))
        replacement = orthogonalised(fresh(j), basis)
        successor = jnp.where(broken, replacement, residual)
        successor = successor / jnp.linalg.norm(successor)
        return basis.at[j + 1].set(successor), projection

    basis, projection = jax.lax.fori_loop(0, steps, body, (basis, projection))
    # The upper triangle was computed as q_i·Hq_j; H is symmetric, so mirror it.
    upper = jnp.triu(projection)
    values, vectors = jnp.linalg.eigh(upper + jnp.triu(upper, 1).T)
    return values[-1], basis[:steps].T @ vectors[:, -1]


def preconditioned_top_eigenvalue(
    loss: Callable[[PyTree], jax.Array],
    params: PyTree,
    opt_state: optax.OptState,
    *,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    iterations: int = 20,
    vector: PyTree | None = None,
) -> tuple[jax.Array, PyTree]:
    """The top eigenvalue of P^(−1/2)·H·P^(−1/2), Adam's preconditioned sharpness.

    P = diag(√(v̂ + eps_root) + eps) is the preconditioner Adam divides its step
    by, with v̂ = ν / (1 − b2^count) the bias-corrected second moment read from
    the ``ScaleByAdamState`` inside ``opt_state`` (adam, adamw, nadam, nadamw,
    or any chain holding one ``scale_by_adam``). P⁻¹H has the same eigenvalues;
    Adam with a frozen preconditioner is stable while this is below
    (2 + 2β₁)/((1 − β₁)η) (Cohen et al. 2022). Pass the state *after* the update
    of the step taken from ``params``: that update used its ν.

    It is :func:`top_eigenvalue` of u ↦ loss(params + P^(−1/2)·u) at u = 0, so
    the returned eigenvector lives in those rescaled coordinates u (the
    parameter direction is P^(−1/2)·u); pass it back as ``vector`` to warm
    start.

    Args:
      loss: a scalar function of a parameter pytree.
      params: where to take the Hessian.
      opt_state: an optax state holding exactly one ``ScaleByAdamState``.
      b2, eps, eps_root: the optimizer's own settings (optax's defaults here).
      iterations: as for :func:`top_eigenvalue`.
      vector: as for :func:`top_eigenvalue`, in the rescaled coordinates.

    Returns:
      ``(value, vector)`` as for :func:`top_eigenvalue`. At count 0 (a fresh
      state) ν is zero and P = √eps_root + eps.

    Raises:
      ValueError: when ``opt_state`` holds no ``ScaleByAdamState`` or several
        (per-group learning rates give one per group).

    >>> import jax.numpy as jnp
    >>> import optax
    >>> state = optax.ScaleByAdamState(
    ...     count=jnp.asarray(1), mu=jnp.zeros(2), nu=jnp.array([0.004, 1e-3])
    ... )  # after one step of b2 = 0.999: v̂ = 1000 ν = (4, 1)
    >>> def loss(w):
    ...     return 3 * w[0] ** 2 + w[1] ** 2  # Hessian diag(6, 2)
    >>> value, _ = preconditioned_top_eigenvalue(loss, jnp.ones(2), state, eps=0.0)
    >>> round(float(value), 4)  # max(6 / √4, 2 / √1)
    3.0
    """
    nu, count = _adam_moments(opt_state)
    corrected = jnp.where(count > 0, 1 - b2 ** jnp.maximum(count, 1), 1)
    scale = jax.tree.map(
        lambda n: (
            1 / jnp.sqrt(jnp.sqrt(n / corrected.astype(n.dtype) + eps_root) + eps)
        ),
        nu,
    )

    def rescaled(u):
        return loss(jax.tree.map(lambda p, s, x: p + s * x, params, scale, u))

    origin = jax.tree.map(jnp.zeros_like, params)
    return top_eigenvalue(rescaled, origin, iterations=iterations, vector=vector)


def _adam_moments(opt_state):
    """ν and the step count of the one ``ScaleByAdamState`` in ``opt_state``."""

    def adam_field(path, _):
        last = path[-1]
        return getattr(last, "tuple_name", None) == "ScaleByAdamState"

    found = {
        field: optax.tree_utils.tree_get_all_with_path(opt_state, field, adam_field)
        for field in ("nu", "count")
    }
    if len(found["nu"]) != 1 or len(found["count"]) != 1:
        raise ValueError(
            "preconditioned_top_eigenvalue: opt_state must hold exactly one optax "
            f"ScaleByAdamState (adam, adamw, nadam, nadamw); found "
            f"{len(found['nu'])}. Per-group learning rates give one per group; "
            "use one learning rate, or top_eigenvalue for the plain sharpness"
        )
    return found["nu"][0][1], found["count"][0][1]


class Threshold(NamedTuple):
    """Where an optimizer stops being stable on a quadratic.

    Attributes:
      value: the largest stable sharpness.
      label: its formula, as in ``"2/η"``.
      preconditioned: whether it bounds the preconditioned sharpness
        (:func:`preconditioned_top_eigenvalue`) rather than the plain one.
    """

    value: float
    label: str
    preconditioned: bool


def threshold(optimizer: Mapping[str, Any]) -> Threshold | None:
    """The stability threshold on the sharpness of a checked ``optimizer`` section.

    On a quadratic of curvature λ (for Adam: with its preconditioner frozen),
    the step converges iff λ is below

    - sgd: 2/η;
    - sgd with momentum β (optax's heavy ball, m ← g + βm, w ← w − ηm):
      (2 + 2β)/η;
    - sgd with Nesterov momentum (optax's form, w ← w − η(g + β(g + βm))):
      (2 + 2β)/((1 + 2β)η);
    - adam, adamw (λ of P⁻¹H): (2 + 2β₁)/((1 − β₁)η); with ``nesterov``
      (optax's nadam): (2 + 2β₁)/((1 − β₁)(1 + 2β₁)η). AdamW's weight decay
      is left out.

    Returns:
      A :class:`Threshold`, or None when there is no single threshold: other
      optimizers, per-group learning rates (a list), a schedule other than
      ``constant`` (η changes with the step), or η = 0.

    >>> threshold({"name": "sgd", "learning_rate": 0.5, "momentum": 0.9})
    Threshold(value=7.6, label='(2 + 2β)/η', preconditioned=False)
    """
    rate = optimizer.get("learning_rate")
    schedule = optimizer.get("schedule")
    if (
        isinstance(rate, list | tuple)
        or rate is None
        or not rate > 0
        or (schedule and schedule["name"] != "constant")
    ):
        return None
    name = optimizer["name"]
    if name == "sgd":
        beta = optimizer.get("momentum") or 0.0
        if beta == 0:
            return Threshold(2 / rate, "2/η", False)
        if optimizer.get("nesterov"):
            value = (2 + 2 * beta) / ((1 + 2 * beta) * rate)
            return Threshold(value, "(2 + 2β)/((1 + 2β)η)", False)
        return Threshold((2 + 2 * beta) / rate, "(2 + 2β)/η", False)
    if name in _ADAM_FAMILY:
        beta = optimizer["b1"]
        if optimizer.get("nesterov"):
            value = (2 + 2 * beta) / ((1 - beta) * (1 + 2 * beta) * rate)
            return Threshold(value, "(2 + 2β₁)/((1 − β₁)(1 + 2β₁)η)", True)
        return Threshold(
            (2 + 2 * beta) / ((1 - beta) * rate), "(2 + 2β₁)/((1 − β₁)η)", True
        )
    return None


class EdgeOfStability(NamedTuple):
    """Loss and sharpness of one run, step by step.

    Attributes:
      step: the steps 0, 1, …, T − 1.
      loss: the full loss at each step's parameters (before its update).
      sharpness: the top Hessian eigenvalue there, preconditioned for the Adam
        family; NaN at the steps where it was not computed.
      threshold: the optimizer's stability threshold, or None (see
        :func:`threshold`).
      label: the threshold's formula, or None.
      preconditioned: whether ``sharpness`` is Adam's preconditioned sharpness.
      title: the optimizer and its learning rate, for figures.
    """

    step: np.ndarray
    loss: np.ndarray
    sharpness: np.ndarray
    threshold: float | None
    label: str | None
    preconditioned: bool
    title: str = ""


def edge_of_stability(
    exp: Experiment | Mapping | str, every: int = 1, iterations: int = 20
) -> EdgeOfStability:
    """Loss and sharpness along the unswept run of a config.

    The run is the config's own start and optimizer (as
    :func:`dynamics.engine.path`), all steps in one jitted ``lax.scan``. Every
    ``every`` steps it also takes the sharpness at the step's parameters,
    warm-started from the eigenvector of the previous one. With a minibatch
    model the steps follow the minibatch gradients, and the loss and
    sharpness are those of the full data.

    Args:
      exp: an experiment, or anything :func:`dynamics.load_config` reads.
      every: take the sharpness at the steps divisible by this.
      iterations: Lanczos steps per sharpness (unused up to
        :data:`EXACT_LIMIT` parameters).

    Raises:
      ValueError: for ``every`` or ``iterations`` below 1, or an Adam-family
        optimizer with per-group learning rates.

    >>> eos = edge_of_stability({"objective": {"name": "quadratic_nd",
    ...                                        "spectrum": [1.0, 4.0]},
    ...                          "start": {"w": 1.0},
    ...                          "optimizer": {"name": "sgd", "learning_rate": 0.1},
    ...                          "steps": 8}, every=4)
    >>> eos.sharpness.round(4).tolist()  # the Hessian's top eigenvalue, every 4
    [4.0, nan, nan, nan, 4.0, nan, nan, nan]
    >>> eos.label, round(eos.threshold, 4)
    ('2/η', 20.0)
    """
    exp = load_config(exp)
    for name, value in (("every", every), ("iterations", iterations)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(
                f"edge_of_stability: {name} must be an int ≥ 1, not {value!r}"
            )
    optimizer = exp.config["optimizer"]
    preconditioned = optimizer["name"] in _ADAM_FAMILY
    if preconditioned and isinstance(optimizer["learning_rate"], list):
        raise ValueError(
            "edge_of_stability: the preconditioned sharpness needs one Adam state, "
            "but optimizer.learning_rate is a list (one state per group); give one "
            "learning rate"
        )
    line = threshold(optimizer)
    dtype = np.dtype(exp.dtype)
    steps = exp.steps

    with jax.enable_x64(dtype == np.float64):
        problem = objectives.build(exp.config, dtype)
        opt = optimizers.build(optimizer, dtype)
        gradient = problem.gradient()

        def sharpness(params, state, vector):
            if preconditioned:
                return preconditioned_top_eigenvalue(
                    problem.loss,
                    params,
                    state,
                    b2=jnp.asarray(optimizer["b2"], dtype),
                    eps=jnp.asarray(optimizer["eps"], dtype),
                    eps_root=jnp.asarray(optimizer["eps_root"], dtype),
                    iterations=iterations,
                    vector=vector,
                )
            return top_eigenvalue(
                problem.loss, params, iterations=iterations, vector=vector
            )

        def step(carry, t):
            params, state, vector = carry
            loss, grad = gradient(params, t)
            updates, state = opt.update(grad, state, params)
            value, vector = jax.lax.cond(
                t % every == 0,
                lambda: sharpness(params, state, vector),
                lambda: (jnp.full((), jnp.nan, dtype), vector),
            )
            params = optax.apply_updates(params, updates)
            return (params, state, vector), (loss, value)

        @jax.jit
        def run(params):
            zeros = jax.tree.map(jnp.zeros_like, params)
            carry = (params, opt.init(params), zeros)
            _, (losses, values) = jax.lax.scan(
                step, carry, jnp.arange(steps, dtype=jnp.int32)
            )
            return losses, values

        losses, values = jax.device_get(run(problem.params))

    rate = optimizer["learning_rate"]
    rate = (
        ", ".join(map("{:g}".format, rate)) if isinstance(rate, list) else f"{rate:g}"
    )
    return EdgeOfStability(
        step=np.arange(steps),
        loss=np.asarray(losses, dtype=float),
        sharpness=np.asarray(values, dtype=float),
        threshold=None if line is None else line.value,
        label=None if line is None else line.label,
        preconditioned=preconditioned,
        title=f"{exp.name}: {optimizer['name']}, η = {rate}",
    )


def plot_edge_of_stability(eos: EdgeOfStability, *, style=None) -> "Figure":
    """Loss (top) and sharpness (bottom) against step, with the threshold line.

    The loss axis is logarithmic when every finite loss is positive. The
    threshold is a dashed line labelled with its formula and value. ``style``
    is a :class:`dynamics.figures.Style` (default: the default style).
    """
    # Imported here so that the engine, which uses this module, loads no
    # plotting library.
    from dynamics.figures import Style

    style = Style.of(None, style)
    with style.context():
        return _draw_edge_of_stability(eos, style)


def _draw_edge_of_stability(eos, style):
    colours = style.colours
    fig = style.figure(5.6 / 7.2, narrow_aspect=1.05)
    ax_loss, ax_sharp = fig.subplots(2, 1, sharex=True)

    finite = np.isfinite(eos.loss)
    ax_loss.plot(eos.step[finite], eos.loss[finite], color=colours.line, lw=1.2)
    shown = eos.loss[finite]
    # A log axis only where the loss spans a decade or more: over less, its
    # ticks are unreadable.
    if shown.size and np.all(shown > 0) and shown.max() >= 10 * shown.min():
        ax_loss.set_yscale("log")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title(eos.title or "edge of stability", loc="left")

    taken = np.isfinite(eos.sharpness)
    line = "-" if taken.sum() > 60 else "-o"
    ax_sharp.plot(
        eos.step[taken],
        eos.sharpness[taken],
        line,
        color=colours.extra,
        lw=1.2,
        ms=3,
        label="preconditioned sharpness λ₁(P⁻¹H)"
        if eos.preconditioned
        else "sharpness λ₁(H)",
    )
    if eos.threshold is not None:
        ax_sharp.axhline(
            eos.threshold,
            color=colours.accent,
            ls="--",
            lw=1.2,
            label=f"{eos.label} = {eos.threshold:.4g}",
        )
    ax_sharp.set_ylabel(
        "preconditioned sharpness" if eos.preconditioned else "sharpness"
    )
    ax_sharp.set_xlabel("step")
    ax_sharp.legend(
        loc="best", frameon=False, fontsize=style.small if style.narrow else None
    )
    return fig
