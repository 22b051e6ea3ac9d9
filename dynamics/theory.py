r"""Theory: the closed-form stability boundary of sgd on a quadratic, for the map.

On an objective with a constant Hessian :math:`H`, sgd is a linear iteration in
the distance :math:`e = w - w^*` from the minimum, and each eigenvector of
:math:`H` (eigenvalue :math:`\lambda`) evolves alone with the step
:math:`h = \eta\lambda`. Its characteristic roots, with optax's conventions
(momentum :math:`\beta`, trace :math:`m \leftarrow g + \beta m`):

- gradient descent, :math:`w \leftarrow w - \eta g`: :math:`z = 1 - h`;
- heavy ball, :math:`w \leftarrow w - \eta m`:
  :math:`z^2 - (1 + \beta - h)\,z + \beta = 0`;
- Nesterov, :math:`w \leftarrow w - \eta (g + \beta m)`:
  :math:`z^2 - (1 + \beta)(1 - h)\,z + \beta (1 - h) = 0`.

The run's spectral radius :math:`\rho` is the largest :math:`|z|` over the modes
it excites: those along which the starting gradient has a component, and, once
the run moves, those that rounding reaches through the coordinates that move. It
converges for :math:`\rho < 1`, cycles for :math:`\rho = 1` and diverges for
:math:`\rho > 1`. Per-group learning rates make the step :math:`P g` with
:math:`P` diagonal; the modes are then those of :math:`P^{1/2} H P^{1/2}`, whose
eigenvalues take the place of :math:`h`.

>>> from dynamics.config import load_config
>>> exp = load_config({"objective": {"expr": "(w - 2)**2 + 1"},
...                    "start": {"w": 0.0},
...                    "optimizer": {"name": "sgd", "learning_rate": 0.1},
...                    "sweep": {"optimizer.learning_rate": [0.25, 1.0, 1.5]}})
>>> radius(exp).tolist()
[0.5, 1.0, 2.0]
>>> predicted(radius(exp)).tolist()
[0, 1, 2]
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.flatten_util import ravel_pytree
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patheffects import Normal, Stroke

from dynamics import engine, figures, objectives
from dynamics.classify import Regime
from dynamics.config import Axis, Experiment
from dynamics.schema import substitute

#: How far from 1 a radius may be and still be read as a cycle (ρ = 1).
ONE_TOLERANCE = 1e-9
#: Relative change of the Hessian between points, or relative size of the third
#: derivative, above which the objective is not quadratic. Loose enough for a
#: loss evaluated with float32 constants, far below any real change.
HESSIAN_RTOL = 1e-6
#: Black stands out on every colour of the map's Okabe–Ito palette; a white
#: halo keeps it visible on the dark blue of the converged cells.
#: Most values along an axis at which the overlay evaluates the closed form.
SAMPLES = 1024
COLOUR = "#000000"
HALO = "#FFFFFF"

# The constancy check compares the start with this many random points, along
# this many random directions; the draws are fixed, so that a verdict does not
# change from one call to the next.
_POINTS = 2
_DIRECTIONS = 3
# An eigenvector entry above this links its mode to that coordinate; entries
# of decoupled blocks come out of eigh as exact zeros or at rounding level.
_OVERLAP = 1e-8
# Cells per batch of starting gradients, and the memory the eigenvector
# gathers of one batch may take.
_CHUNK = 4096
#: Cells whose radius is worked out at a time.
_CELLS = 2**20
_GATHER_BYTES = 64 * 2**20


def applies(exp: Experiment) -> str | None:
    """Whether a closed-form boundary applies: None if so, else why not.

    It applies to ``sgd`` (plain, heavy ball or Nesterov) with a constant step
    size, full-batch gradients and an objective whose Hessian is the same
    everywhere (checked numerically, at random points, for every swept setting
    of the objective).

    >>> from dynamics.config import load_config
    >>> exp = load_config({"objective": {"name": "rosenbrock"},
    ...                    "optimizer": {"name": "sgd", "learning_rate": 0.001}})
    >>> applies(exp)
    'the objective is not quadratic: its Hessian changes from point to point'
    """
    reason = _optimizer_reason(exp.config["optimizer"]) or _frozen_group(exp)
    model = exp.config["objective"].get("model")
    if reason is None and model not in (None, "linear"):
        # Known without looking: only the linear model's loss is quadratic.
        reason = f"the objective is not quadratic: the {model} model is nonlinear"
    if reason is None:
        reason = _study(exp).reason
    return reason


def attach(ds: xr.Dataset, exp: Experiment) -> xr.Dataset:
    """Adds ``theory_radius`` and the ``theory_agreement`` attribute when the
    closed form applies to ``exp``; returns ``ds`` unchanged otherwise."""
    if not exp.sweep or applies(exp) is not None:
        return ds
    rho = radius(exp)
    ds["theory_radius"] = (
        ds["regime"].dims,
        rho,
        {
            "long_name": "spectral radius of the linear iteration (closed "
            "form): converged below 1, diverged above"
        },
    )
    ds.attrs["theory_agreement"] = agreement(ds, exp, rho)
    return ds


def radius(exp: Experiment) -> np.ndarray:
    """The spectral radius ρ of each run's linear iteration, shaped ``exp.shape``.

    Only modes the run excites count: a start at the minimum has ρ = 0, and a
    mode confined to coordinates that never move stays out. A mode that the
    start misses by an exact cancellation still counts, since rounding feeds
    it as soon as the run moves. Swept values are rounded to the experiment's
    dtype first, as the engine does, and the closed form is then evaluated in
    float64. A zero learning rate leaves the parameters where they start: the
    root z = 1, so ρ = 1.

    Raises:
      ValueError: when :func:`applies` gives a reason; the message holds it.
    """
    return _radius(exp)


def mode_radius(step, momentum=0.0, nesterov: bool = False) -> np.ndarray:
    r"""The largest root modulus of one mode, for the step h = ηλ (float64).

    Both roots of :math:`z^2 - bz + c` are real when :math:`b^2 \ge 4c`, the
    larger modulus being :math:`(|b| + \sqrt{b^2 - 4c})/2`; otherwise they are
    conjugate and both have modulus :math:`\sqrt{c}`.

    >>> mode_radius([0.5, 2.0, 3.0]).tolist()  # gradient descent: |1 - h|
    [0.5, 1.0, 2.0]
    >>> float(mode_radius(1.0, momentum=0.25))  # heavy ball, complex: √β
    0.5
    """
    step = np.asarray(step, dtype=np.float64)
    beta = np.asarray(momentum, dtype=np.float64)
    if nesterov:
        b, c = (1 + beta) * (1 - step), beta * (1 - step)
    else:
        b, c = 1 + beta - step, beta * np.ones_like(step)
    with np.errstate(over="ignore", invalid="ignore"):  # huge steps: ρ = inf
        discriminant = b * b - 4 * c
        real = (np.abs(b) + np.sqrt(np.maximum(discriminant, 0.0))) / 2
        return np.where(discriminant >= 0, real, np.sqrt(np.maximum(c, 0.0)))


def predicted(radius, atol: float = ONE_TOLERANCE) -> np.ndarray:
    """Regime codes from spectral radii: converged below 1, diverged above.

    A radius within ``atol`` of 1 is a cycle (oscillating): gradient descent at
    η = 1 on (w − 2)² + 1 jumps between 0 and 4 for ever.
    """
    radius = np.asarray(radius, dtype=np.float64)
    codes = np.where(radius < 1, Regime.CONVERGED, Regime.DIVERGED)
    codes = np.where(np.abs(radius - 1) <= atol, Regime.OSCILLATING, codes)
    return codes.astype(np.int8)


def prediction(exp: Experiment, radius=None) -> np.ndarray:
    """The predicted regime of every cell, shaped ``exp.shape``.

    :func:`predicted` of the radius, except that a cell with a zero learning
    rate (for any group) and ρ = 1 is stalled: those parameters stay where
    they start, which the classifier calls stalled, not a cycle.
    """
    rho = _radius_or(exp, radius)
    codes = predicted(rho)
    still = _still(exp) & (np.abs(rho - 1) <= ONE_TOLERANCE)
    return np.where(still, np.int8(Regime.STALLED), codes).astype(np.int8)


def agreement(ds: xr.Dataset, exp: Experiment, radius=None) -> float:
    """The share of run cells whose simulated regime is the predicted one.

    Args:
      ds: the results of ``exp``, as :func:`dynamics.run` returns them.
      exp: the experiment, for the closed form.
      radius: :func:`radius` of ``exp`` when already computed.

    Cells marked not run are left out of the count. Nothing is excused: a cell
    close to the boundary that the finite run classifies otherwise counts as a
    disagreement.
    """
    regime = _regime(ds, exp)
    expected = prediction(exp, radius)
    run = regime != Regime.NOT_RUN
    if not run.any():
        raise ValueError("the dataset has no run cells to compare")
    return float(np.mean(regime[run] == expected[run]))


def overlay(
    ax: Axes,
    ds: xr.Dataset,
    exp: Experiment,
    radius=None,
    x: str | None = None,
    y: str | None = None,
    note: str | None = None,
    refine: int = 4,
) -> list:
    """Draws the theory's boundary ρ = 1 on a stability map, dashed.

    Args:
      ax: the axes of :func:`dynamics.figures.plot_stability_map` of ``ds``.
      ds: the results the map shows.
      exp: their experiment.
      radius: :func:`radius` of ``exp`` when already computed; used when
        ``refine`` is 1.
      x, y: the sweep keys on the horizontal and vertical axes, as given to
        the map (the same defaults: the first and second sweep keys).
        Further sweep axes are taken at their first value, as the map does.
      note: a further line for the legend, such as the agreement share.
      refine: the closed form is evaluated on a grid this many times finer
        than the map's along the optimizer and objective axes, between their
        first and last cell centres, so that the line does not inherit the
        cells' staircase.

    Returns:
      The artists drawn: a contour set on a two-axis map, vertical lines on a
      one-axis map, nothing when the boundary is not in the window. A second
      legend below the map's own names the line.
    """
    keys = [axis.key for axis in exp.sweep]
    x = x or (keys[0] if keys else None)
    y = y or next((key for key in keys if key != x), None)
    large = any(len(axis.values) > SAMPLES for axis in exp.sweep)
    if (refine > 1 or large) and x is not None:
        shown = _finer(exp, (x, y), refine)
        coords = {axis.key: axis.values for axis in shown.sweep}
        rho = xr.DataArray(_radius(shown), dims=keys, coords=coords)
    else:
        coords = {key: np.asarray(ds[key]) for key in keys}
        rho = xr.DataArray(_radius_or(exp, radius), dims=keys, coords=coords)
    rho = rho.isel({key: 0 for key in keys if key not in (x, y)})
    for key in (x, y):
        if key is not None:
            rho = rho.sortby(key)
    values = np.asarray(rho.transpose(*[key for key in (y, x) if key is not None]))

    halo = [Stroke(linewidth=3.4, foreground=HALO), Normal()]
    crosses = values.min(initial=np.inf) <= 1 <= values.max(initial=-np.inf)
    crosses = crosses and not np.all(values == 1)
    artists = []
    if x is not None and y is not None and crosses:
        artists.append(
            ax.contour(
                np.asarray(rho[x], float),
                np.asarray(rho[y], float),
                values,
                levels=[1.0],
                colors=COLOUR,
                linestyles="--",
                linewidths=1.6,
                path_effects=halo,
                zorder=3,
            )
        )
    elif x is not None and crosses:
        for where in _crossings(np.asarray(rho[x], float), values):
            line = ax.axvline(
                where, color=COLOUR, ls="--", lw=1.6, path_effects=halo, zorder=3
            )
            artists.append(line)
    _add_legend(ax, artists, values, note)
    return artists


def plot_theory_overlay(
    ds: xr.Dataset,
    exp: Experiment,
    x: str | None = None,
    y: str | None = None,
    *,
    style: figures.Style | None = None,
) -> Figure:
    """The stability map with the theory's boundary and its agreement share.

    ``style`` defaults to the one in the config stored in ``ds``.

    >>> from dynamics.config import load_config
    >>> from dynamics.results import to_dataset
    >>> exp = load_config({"objective": {"expr": "(w - 2)**2 + 1"},
    ...                    "start": {"w": 0.0},
    ...                    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    ...                    "sweep": {"optimizer.learning_rate":
    ...                              {"linspace": [0.1, 1.4], "num": 14}}})
    >>> ds = to_dataset(exp, engine.simulate(exp))
    >>> fig = plot_theory_overlay(ds, exp)
    >>> fig.axes[0].get_legend().get_texts()[-1].get_text()
    'agrees on 14 of 14 cells (100.0 %)'
    """
    keys = [axis.key for axis in exp.sweep]
    stored = "theory_radius" in ds and sorted(ds["theory_radius"].dims) == sorted(keys)
    # The run stored it already: no second pass over a large grid.
    rho = np.asarray(ds["theory_radius"].transpose(*keys)) if stored else None
    rho = _radius_or(exp, rho)
    share = agreement(ds, exp, radius=rho)
    cells = int(np.sum(_regime(ds, exp) != Regime.NOT_RUN))
    agree = round(share * cells)
    # Rounded down, so that a single disagreement never reads as 100 %.
    percent = math.floor(1000 * agree / cells) / 10
    style = figures.Style.of(ds, style)
    fig = figures.plot_stability_map(ds, x=x, y=y, style=style)
    note = f"agrees on {agree:,} of {cells:,} cells ({percent:.1f} %)"
    with style.context():
        overlay(fig.axes[0], ds, exp, radius=rho, x=x, y=y, note=note)
    return fig


# What the objective is.


class _Study(NamedTuple):
    """The objective's curvature, per distinct swept setting of the objective.

    Attributes:
      reason: why no closed form applies, or None.
      rows: per cell (C order), the index of its objective setting.
      hessians: ``(settings, n, n)`` float64 Hessians.
      groups: per flat coordinate, the index of its parameter group.
    """

    reason: str | None
    rows: np.ndarray | None = None
    hessians: np.ndarray | None = None
    groups: np.ndarray | None = None


def _optimizer_reason(optimizer):
    name = optimizer["name"]
    if name != "sgd":
        return (
            f"{name} has no closed-form boundary: its step is not a fixed linear "
            "map of the gradient (only sgd, plain, heavy ball or Nesterov, is)"
        )
    schedule = optimizer.get("schedule")
    if schedule and schedule["name"] != "constant":
        return (
            f"a schedule ({schedule['name']}) changes the step size from step to "
            "step; the closed form needs a constant one"
        )
    return None


def _frozen_group(exp):
    """Why a group whose learning rate is zero beside moving ones has no closed form.

    The moving groups then settle short of the minimum, and whether the
    classifier calls that converged or stalled depends on how much gradient is
    left, not on a root. All rates zero at once is fine: nothing moves.
    """
    rate = exp.config["optimizer"]["learning_rate"]
    if not isinstance(rate, list):
        return None
    cells = _cells(exp, prefix="optimizer.learning_rate")
    keys = [f"optimizer.learning_rate.{index}" for index in range(len(rate))]
    zero = np.stack(
        [_column(cells, key, value) == 0 for key, value in zip(keys, rate, strict=True)]
    )
    partly = zero.any(axis=0) & ~zero.all(axis=0)
    if not partly.any():
        return None
    key = keys[int(np.flatnonzero(zero[:, partly].any(axis=1))[0])]
    return (
        f"{key} is 0 in some runs while another group moves: the moving groups "
        "settle short of the minimum, and whether that reads as converged or "
        "stalled depends on the gradient left, not on a root"
    )


def _study(exp):
    """Checks that the objective is quadratic and measures its Hessians."""
    cells = _cells(exp, prefix="objective.")
    keys = list(cells)
    table = np.stack([cells[key] for key in keys], axis=1) if keys else None
    if table is None:
        settings, rows = np.zeros((1, 0)), np.zeros(exp.n_runs, dtype=np.int64)
    else:
        settings, rows = np.unique(table, axis=0, return_inverse=True)
        rows = rows.reshape(-1)

    shape = _shape(exp)
    if shape.minibatch:
        return _Study(
            "minibatches: each step descends the loss of a different batch, "
            "not one fixed quadratic"
        )
    with jax.enable_x64(True):
        check = jax.jit(jax.vmap(_constancy(exp, keys, shape.size)))
        verdict = jax.device_get(check(jnp.asarray(settings)))
    if not np.all(verdict["finite"]):
        return _Study("the objective is not quadratic: it is not finite everywhere")
    scale = np.maximum(verdict["scale"], np.finfo(np.float64).tiny)
    if np.any(verdict["spread"] > HESSIAN_RTOL * scale) or np.any(
        verdict["third"] > HESSIAN_RTOL * scale
    ):
        return _Study(
            "the objective is not quadratic: its Hessian changes from point to point"
        )

    with jax.enable_x64(True):
        measure = jax.jit(jax.vmap(_curvature(exp, keys)))
        hessians, gradients = jax.device_get(measure(jnp.asarray(settings)))
    hessians = np.asarray(hessians, np.float64)
    hessians = (hessians + np.swapaxes(hessians, 1, 2)) / 2
    eigenvalues, vectors = np.linalg.eigh(hessians)
    size = np.max(np.abs(eigenvalues), axis=1, keepdims=True)
    flat = np.abs(eigenvalues) <= 1e-9 * size
    along = np.abs(np.einsum("rn,rnk->rk", np.asarray(gradients), vectors))
    noise = 1e-9 * np.linalg.norm(gradients, axis=1, keepdims=True)
    if np.any(flat & (along > noise)):
        return _Study(
            "the objective has no minimum: it is linear along a direction where "
            "its Hessian vanishes, so sgd drifts along it for ever"
        )
    return _Study(reason=None, rows=rows, hessians=hessians, groups=shape.groups)


class _Shape(NamedTuple):
    size: int
    groups: np.ndarray
    minibatch: bool


def _shape(exp):
    """The number of parameters, each one's group, and whether it uses batches."""
    found = {}

    def trace():
        problem = objectives.build(exp.config, exp.dtype)
        found["minibatch"] = problem.step_loss is not None
        labels = {
            key: jnp.full(jnp.shape(value), index)
            for index, (key, value) in enumerate(problem.params.items())
        }
        return ravel_pytree(labels)[0]

    with jax.enable_x64(True):
        groups = np.asarray(trace())
    return _Shape(
        size=int(groups.shape[0]), groups=groups, minibatch=found["minibatch"]
    )


def _flat_loss(exp, keys, values):
    """The loss of flat float64 parameters, and the start, for swept values.

    The objective is built in the experiment's dtype, so its constants are
    rounded as in the simulation; the arithmetic is then float64.
    """
    swept = {key: values[i] for i, key in enumerate(keys)}
    problem = objectives.build(substitute(exp.config, swept), exp.dtype)
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), problem.params)
    flat, unravel = ravel_pytree(params)
    return (lambda point: jnp.asarray(problem.loss(unravel(point)), jnp.float64)), flat


def _constancy(exp, keys, size):
    """Compares Hessian-vector products at random points, and the third derivative.

    Hessian-vector products keep the check cheap for objectives with many
    parameters, which are refused before any full Hessian is formed.
    """
    rng = np.random.default_rng(0)
    offsets = rng.standard_normal((_POINTS, size))
    directions = rng.standard_normal((_DIRECTIONS, size))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)

    def check(values):
        loss, start = _flat_loss(exp, keys, values)
        gradient = jax.grad(loss)
        reach = 1 + jnp.linalg.norm(start) / np.sqrt(size)

        def product(point, direction):
            return jax.jvp(gradient, (point,), (direction,))[1]

        points = [start] + [start + reach * offset for offset in offsets]
        here = [product(start, d) for d in directions]
        spread = jnp.stack(
            [
                jnp.linalg.norm(product(point, d) - h)
                for point in points[1:]
                for d, h in zip(directions, here, strict=True)
            ]
        )
        third = jnp.stack(
            [
                reach
                * jnp.linalg.norm(
                    jax.jvp(lambda p, d=d: product(p, d), (points[1],), (e,))[1]
                )
                for d, e in zip(directions, directions[::-1], strict=True)
            ]
        )
        finite = jnp.all(
            jnp.stack([jnp.isfinite(loss(point)) for point in points])
        ) & jnp.all(jnp.isfinite(jnp.stack(here)))
        return {
            "spread": jnp.max(spread),
            "third": jnp.max(third),
            "scale": jnp.max(jnp.linalg.norm(jnp.stack(here), axis=1)),
            "finite": finite,
        }

    return check


def _curvature(exp, keys):
    def measure(values):
        loss, start = _flat_loss(exp, keys, values)
        return jax.hessian(loss)(start), jax.grad(loss)(start)

    return measure


# Each cell.


def _radius(exp):
    """:func:`radius`, for any experiment (the overlay's finer one too)."""
    reason = _optimizer_reason(exp.config["optimizer"]) or _frozen_group(exp)
    study = _study(exp) if reason is None else None
    reason = reason or study.reason
    if reason is not None:
        raise ValueError(f"no closed-form boundary for '{exp.name}': {reason}")

    optimizer = exp.config["optimizer"]
    nesterov = bool(optimizer.get("nesterov"))
    result = np.empty(exp.n_runs)
    norms = np.linalg.norm(study.hessians, ord=2, axis=(1, 2))
    # In blocks of cells: a 4096 × 4096 sweep would otherwise hold a dozen
    # float64 copies of its grid at once.
    for begin in range(0, exp.n_runs, _CELLS):
        runs = np.arange(begin, min(begin + _CELLS, exp.n_runs))
        part = study._replace(rows=study.rows[runs])
        cells = _cells(exp, runs)
        gradients, starts = _starting_points(exp, cells)
        # No momentum is β = 0, where all three forms are gradient descent.
        momentum = _column(cells, "optimizer.momentum", optimizer["momentum"] or 0.0)
        rates = _rates(exp, cells, study.groups)
        floor = (
            64
            * np.finfo(np.float64).eps
            * (
                norms[part.rows] * np.linalg.norm(starts, axis=1)
                + np.linalg.norm(gradients, axis=1)
            )
        )
        solve = _radius_one_rate if rates.ndim == 1 else _radius_per_group
        result[runs] = solve(part, gradients, rates, momentum, nesterov, floor)
    return result.reshape(exp.shape)


def _cells(exp, runs=None, prefix=""):
    """Every swept value per cell (or of the cells ``runs``, in C order),
    rounded to the run's dtype, as float64; only keys starting ``prefix``."""
    dtype = np.dtype(exp.dtype)
    runs = np.arange(exp.n_runs) if runs is None else runs
    return {
        key: np.asarray(column).astype(dtype).astype(np.float64)
        for key, column in engine.grid_values(exp, runs).items()
        if key.startswith(prefix)
    }


def _column(cells, key, default):
    if key in cells:
        return cells[key]
    count = len(next(iter(cells.values()))) if cells else 1
    return np.full(count, float(default), dtype=np.float64)


def _starting_points(exp, cells):
    """The starting gradient and parameters of every cell, float64, flat."""
    keys = [key for key in cells if key.startswith(("objective.", "start."))]
    count = len(next(iter(cells.values()))) if cells else 1
    table = np.stack([cells[key] for key in keys], axis=1) if keys else None
    table = np.zeros((count, 0)) if table is None else table
    chunk = min(_CHUNK, count)

    def one(values):
        loss, start = _flat_loss(exp, keys, values)
        return jax.grad(loss)(start), start

    gradients, starts = [], []
    with jax.enable_x64(True):
        program = jax.jit(jax.vmap(one))
        for begin in range(0, count, chunk):
            block = table[begin : begin + chunk]
            padded = np.concatenate(
                [block, np.repeat(block[-1:], chunk - len(block), 0)]
            )
            gradient, start = jax.device_get(program(jnp.asarray(padded)))
            gradients.append(np.asarray(gradient)[: len(block)])
            starts.append(np.asarray(start)[: len(block)])
    return np.concatenate(gradients), np.concatenate(starts)


def _still(exp):
    """Whether some learning rate of the cell is zero, shaped ``exp.shape``.

    Worked out along the sweep's axes and broadcast, not cell by cell.
    """
    rate = exp.config["optimizer"]["learning_rate"]
    dtype = np.dtype(exp.dtype)
    if isinstance(rate, list):
        given = [
            (f"optimizer.learning_rate.{i}", value) for i, value in enumerate(rate)
        ]
    else:
        given = [("optimizer.learning_rate", rate)]
    axes = [axis.key for axis in exp.sweep]
    still = np.zeros(exp.shape, dtype=bool)
    for key, value in given:
        if key in axes:
            where = axes.index(key)
            zero = exp.sweep[where].values.astype(dtype) == 0
            still |= zero.reshape([-1 if i == where else 1 for i in range(len(axes))])
        elif value == 0:
            still[...] = True
    return still


def _rates(exp, cells, groups):
    """One learning rate per cell, or per cell and flat coordinate for a list."""
    rate = exp.config["optimizer"]["learning_rate"]
    if not isinstance(rate, list):
        return _column(cells, "optimizer.learning_rate", rate)
    per_group = np.stack(
        [
            _column(cells, f"optimizer.learning_rate.{index}", value)
            for index, value in enumerate(rate)
        ],
        axis=1,
    )
    return per_group[:, groups]


def _radius_one_rate(study, gradients, rates, momentum, nesterov, floor):
    eigenvalues, vectors = np.linalg.eigh(study.hessians)
    result = np.zeros(len(gradients))
    for index in range(len(study.hessians)):
        cells = np.flatnonzero(study.rows == index)
        along = gradients[cells] @ vectors[index]
        excited = _reached(np.abs(along) > floor[cells, None], vectors[index])
        steps = rates[cells, None] * eigenvalues[index]
        modes = mode_radius(steps, momentum[cells, None], nesterov)
        result[cells] = np.max(np.where(excited, modes, 0.0), axis=1, initial=0.0)
    return result


def _radius_per_group(study, gradients, rates, momentum, nesterov, floor):
    """The modes of P^½ H P^½, one eigendecomposition per distinct setting."""
    keys = np.concatenate([study.rows[:, None].astype(np.float64), rates], axis=1)
    combos, which = np.unique(keys, axis=0, return_inverse=True)
    which = which.reshape(-1)
    size = gradients.shape[1]
    result = np.zeros(len(gradients))
    batch = max(1, _GATHER_BYTES // (8 * size * size))
    for begin in range(0, len(combos), batch):
        combo = combos[begin : begin + batch]
        root = np.sqrt(combo[:, 1:])
        scaled = root[:, :, None] * study.hessians[combo[:, 0].astype(int)]
        eigenvalues, vectors = np.linalg.eigh(scaled * root[:, None, :])
        for offset in range(len(combo)):
            cells = np.flatnonzero(which == begin + offset)
            along = (gradients[cells] * root[offset]) @ vectors[offset]
            noise = floor[cells, None] * np.max(root[offset], initial=0.0)
            excited = _reached(np.abs(along) > noise, vectors[offset])
            modes = mode_radius(eigenvalues[offset], momentum[cells, None], nesterov)
            result[cells] = np.max(np.where(excited, modes, 0.0), axis=1, initial=0.0)
    return result


def _reached(excited, vectors):
    """The modes a run excites: from its start, or through rounding once it moves.

    Rounding errors land on every coordinate that moves, so a mode that the
    start misses only by an exact cancellation (a start along an eigenvector
    of a rotated Hessian) still grows if it is unstable. A mode confined to
    coordinates that never move (a decoupled block at its minimum) stays at
    exactly zero.
    """
    linked = (np.abs(vectors) > _OVERLAP).astype(np.float64)
    moving = (excited.astype(np.float64) @ linked.T) > 0
    return excited | ((moving.astype(np.float64) @ linked) > 0)


# The dataset side.


def _finer(exp, keys, refine):
    """The experiment with the shown axes sampled ``refine`` times finer.

    Between the first and last values only: beyond them a learning rate or a
    momentum could leave its valid range. Start axes keep the map's values:
    along them the radius changes only on exceptional starts (the minimum, an
    eigenvector), and a finer grid would show exceptions the map's cells do not.
    Axes not shown keep their first value. No shown axis gets more than
    :data:`SAMPLES` values (a start axis longer than that is sampled every
    k-th value): a line drawn on a figure needs no more, and a 4096 × 4096
    map refined 4 times would take gigabytes.
    """
    sweep = []
    for axis in exp.sweep:
        values = np.sort(np.asarray(axis.values, np.float64))
        smooth = not axis.key.startswith("start.")
        if axis.key in keys and smooth and len(values) > 1:
            log = axis.scale == "log" and bool(np.all(values > 0))
            ends = np.log(values[[0, -1]]) if log else values[[0, -1]]
            values = np.linspace(*ends, min(refine * (len(values) - 1) + 1, SAMPLES))
            values = np.exp(values) if log else values
        elif axis.key in keys and len(values) > SAMPLES:
            values = values[:: -(-len(values) // SAMPLES)]
        elif axis.key not in keys:
            values = np.asarray(axis.values[:1], np.float64)
        sweep.append(Axis(key=axis.key, values=values, scale=axis.scale))
    return dataclasses.replace(exp, sweep=tuple(sweep))


def _radius_or(exp, rho):
    rho = _radius(exp) if rho is None else np.asarray(rho, dtype=np.float64)
    if rho.shape != exp.shape:
        raise ValueError(f"radius has shape {rho.shape}, the sweep {exp.shape}")
    return rho


def _regime(ds, exp):
    """The dataset's regimes in the sweep's order, after checking they match."""
    keys = [axis.key for axis in exp.sweep]
    if sorted(ds["regime"].dims) != sorted(keys):
        raise ValueError(
            f"the dataset's dimensions {list(ds['regime'].dims)} are not the "
            f"sweep keys {keys} of '{exp.name}'"
        )
    dtype = np.dtype(exp.dtype)
    for axis in exp.sweep:
        if not np.array_equal(
            np.asarray(ds[axis.key], dtype), axis.values.astype(dtype)
        ):
            raise ValueError(
                f"the dataset's values of {axis.key} are not those of the sweep "
                f"of '{exp.name}'; pass the experiment that made it"
            )
    return np.asarray(ds["regime"].transpose(*keys))


def _crossings(positions, values):
    """Where a sampled ρ crosses 1, by linear interpolation between samples."""
    found = []
    gap = values.reshape(-1) - 1
    for i in range(len(gap) - 1):
        if gap[i] == 0:
            found.append(positions[i])
        elif gap[i] * gap[i + 1] < 0:
            share = gap[i] / (gap[i] - gap[i + 1])
            found.append(positions[i] + share * (positions[i + 1] - positions[i]))
    if len(gap) and gap[-1] == 0:
        found.append(positions[-1])
    return found


def _add_legend(ax, artists, values, note):
    """A second legend for the theory, below the map's own, which stays in place."""
    if artists:
        label = "theory: ρ = 1"
    elif np.all(values < 1):
        label = "theory: ρ < 1 everywhere shown"
    elif np.all(values > 1):
        label = "theory: ρ > 1 everywhere shown"
    else:
        label = "theory: ρ = 1 everywhere shown"
    handles = [Line2D([], [], color=COLOUR, ls="--", lw=1.6)]
    labels = [label]
    if note:
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(note)
    # Beside the map under its legend, or in that legend when it is below.
    figures.add_legend(ax, handles, labels, handlelength=2.6)
