"""Zoom and refinement: a window of a map at full resolution, or its boundary only.

:func:`zoom` turns an earlier run (its folder, or its :class:`Experiment`) into
a new experiment whose sweep covers a window of the old one. :func:`refine`
computes a map adaptively: a coarse grid first, then each level doubles the
resolution and simulates only the new points in cells whose corners disagree,
filling the rest from their corners. Away from the boundaries a map is flat, so
most of a fine map is known without running it.

A window can be narrower than the dtype resolves: neighbouring values of a
float32 axis 1e-9 apart round to the same number. :func:`resolution_problem`
says so, and :func:`zoom` and :func:`refine` warn with a
:class:`ResolutionWarning`.

>>> from dynamics.config import load_config
>>> exp = load_config({"objective": {"expr": "(w - 2)**2 + 1"},
...                    "start": {"w": 0.0},
...                    "optimizer": {"name": "sgd", "learning_rate": 0.1},
...                    "sweep": {"optimizer.learning_rate":
...                              {"linspace": [0.1, 1.2], "num": 12}}})
>>> near = zoom(exp, {"optimizer.learning_rate": (0.9, 1.1)}, num=5)
>>> near.sweep[0].values.round(6).tolist()
[0.9, 0.95, 1.0, 1.05, 1.1]
"""

import dataclasses
import difflib
import itertools
import math
import os
import time
import warnings
from collections.abc import Mapping
from numbers import Real

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dynamics import engine, figures, results, theory
from dynamics.config import Experiment, load_config
from dynamics.errors import ConfigError

#: Neighbouring swept values closer than this many units in the last place of
#: the dtype are not resolved: they round together or land unevenly.
MIN_ULPS = 4
#: Most doublings :func:`refine` takes: each one quadruples a 2-D map.
MAX_LEVELS = 16
#: Most cells around a mixed one that :func:`refine` refines as well.
MAX_MARGIN = 8
#: Most cells of a refined map: every cell of the final grid is held in memory.
MAX_CELLS = 2**28
#: Runs per compiled chunk while refining: every level pads up to it, so one
#: program serves them all, and a level with few new points stays cheap.
REFINE_CHUNK = 1024


class ResolutionWarning(UserWarning):
    """Neighbouring values of a swept axis are too close for the dtype."""


class BudgetWarning(UserWarning):
    """Refinement stopped early: the next level would run more than the budget."""


def zoom(
    source: "str | os.PathLike | Experiment",
    window: Mapping[str, tuple[float, float]],
    *,
    num: int | None = None,
    dtype: str | None = None,
) -> Experiment:
    """A new experiment whose sweep covers a window of an earlier one.

    Each axis in ``window`` is swept from its low to its high value with as
    many points as before (or ``num``) and its own scale: a logspace axis
    stays logspace, a linspace or list axis becomes linspace. Axes not in
    ``window`` keep their values; with ``num``, a linspace or logspace axis
    is resampled to ``num`` points over its range. The window may reach
    outside the original range: a zoom can also widen a map or move it.
    Everything else in the config is kept, and the name gets ``-zoom`` so the
    figures say what they show. Warns with a :class:`ResolutionWarning` when
    the window is narrower than the dtype resolves.

    Args:
      source: a run folder (its ``config.yaml`` is read) or an
        :class:`Experiment`.
      window: sweep key to ``(low, high)`` in the axis' own units.
      num: points on each windowed or resampled axis (default: as before).
      dtype: ``"float32"`` or ``"float64"`` (default: as before); a narrow
        window may need float64.

    Returns:
      The checked :class:`Experiment`; pass it to :func:`dynamics.run`.

    Raises:
      ConfigError: ``source`` is not a run folder, a key is not swept, a
        window has low ≥ high, or a log axis gets a bound ≤ 0.
    """
    exp = read_source(source)
    axes = _swept(exp, window, "window")
    if num is not None and (
        isinstance(num, bool) or not isinstance(num, int) or num < 2
    ):
        raise ConfigError(
            f"zoom num: {num!r} is not a number of points; give a whole number "
            "of at least 2, such as num=64"
        )
    sweep = {}
    for key, spec in exp.config["sweep"].items():
        axis = axes[key]
        if key in window:
            low, high = _bounds(key, window[key], axis.scale)
            sweep[key] = _spec(axis.scale, low, high, num or len(axis.values))
        elif num is not None and isinstance(spec, Mapping):
            sweep[key] = {**spec, "num": num}
        else:
            sweep[key] = spec
    name = exp.name if exp.name.endswith("-zoom") else f"{exp.name}-zoom"
    config = {**exp.config, "name": name, "sweep": sweep}
    if dtype is not None:
        config["dtype"] = dtype
    zoomed = load_config(config)
    warn_resolution(zoomed)
    return zoomed


def window_around(
    source: "str | os.PathLike | Experiment",
    center: Mapping[str, float],
    factor: float,
) -> dict[str, tuple[float, float]]:
    """The window ``factor`` times narrower than each named axis, around a value.

    On a log axis the window is narrower by ``factor`` in log space, so it
    spans the same number of decades on either side of the centre.

    >>> from dynamics.config import load_config
    >>> exp = load_config({"objective": {"expr": "w**2"}, "start": {"w": 1.0},
    ...                    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    ...                    "sweep": {"optimizer.learning_rate":
    ...                              {"logspace": [-4, 0], "num": 9}}})
    >>> low, high = window_around(exp, {"optimizer.learning_rate": 0.01}, 4.0)[
    ...     "optimizer.learning_rate"]
    >>> round(low, 6), round(high, 6)
    (0.003162, 0.031623)
    """
    exp = read_source(source)
    axes = _swept(exp, center, "center")
    if isinstance(factor, bool) or not isinstance(factor, Real) or not factor > 0:
        raise ConfigError(
            f"zoom factor: {factor!r} is not a zoom factor; give a number above "
            "0, such as 10 for a window ten times narrower"
        )
    window = {}
    for key, value in center.items():
        values = axes[key].values
        if not _finite_number(value):
            raise ConfigError(
                f"zoom center {key}: {value!r} is not a number; give the value "
                f"to zoom in on, as in {key}={float(np.median(values)):g}"
            )
        if axes[key].scale == "log":
            if value <= 0:
                raise ConfigError(
                    f"zoom center {key}={value:g}: {key} is a log axis, so the "
                    "centre must be above 0"
                )
            half = math.log10(values.max() / values.min()) / (2 * factor)
            window[key] = (value / 10**half, value * 10**half)
        else:
            half = (values.max() - values.min()) / (2 * factor)
            window[key] = (value - half, value + half)
    return window


def read_source(source: "str | os.PathLike | Experiment") -> Experiment:
    """The experiment of a run folder (from its ``config.yaml``), or ``source``."""
    if isinstance(source, Experiment):
        return source
    if not isinstance(source, str | os.PathLike):
        raise ConfigError(
            f"zoom takes a run folder or an Experiment, not {type(source).__name__}"
        )
    folder = os.fspath(source)
    fix = "give a folder that `dynamics run -o` wrote"
    if not os.path.exists(folder):
        raise ConfigError(f"'{folder}' does not exist; {fix}")
    if not os.path.isdir(folder):
        raise ConfigError(f"'{folder}' is not a folder; {fix}")
    path = os.path.join(folder, "config.yaml")
    if not os.path.isfile(path):
        from dynamics import store

        if os.path.isdir(os.path.join(store.partial_path(folder), store.CHUNKS)):
            store.load(folder)  # a stopped sweep says so, and how to finish it
        raise ConfigError(
            f"'{folder}' holds no config.yaml, so it is not a run folder; {fix}"
        )
    return load_config(path)


def resolution_problem(exp: Experiment) -> str | None:
    """What is wrong when neighbouring swept values are too close for the dtype.

    A swept value is rounded to the dtype before it is run. Neighbours fewer
    than :data:`MIN_ULPS` units in the last place apart come out equal or
    unevenly spaced, so the map repeats or stretches columns.

    Returns:
      One line per such axis, naming it, the spacing in ulps and the fix; or
      ``None`` when every axis is resolved.

    >>> from dynamics.config import load_config
    >>> exp = load_config({"objective": {"expr": "w**2"}, "start": {"w": 1.0},
    ...                    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    ...                    "sweep": {"optimizer.learning_rate":
    ...                              {"linspace": [1.0, 1.0000001], "num": 50}}})
    >>> print(resolution_problem(exp))  # doctest: +ELLIPSIS
    sweep axis 'optimizer.learning_rate': neighbouring values near 1 are 0.017 ulps...
    >>> resolution_problem(load_config(exp.config, ["dtype=float64"])) is None
    True
    """
    dtype = np.dtype(exp.dtype)
    lines = []
    for axis in exp.sweep:
        values = _ascending(axis.values)
        if len(values) < 2:
            continue
        with np.errstate(over="ignore"):
            cast = values.astype(dtype)  # ascending too: rounding keeps order
        magnitude = np.maximum(np.abs(cast[:-1]), np.abs(cast[1:]))
        ulps = np.diff(values) / np.spacing(magnitude).astype(np.float64)
        worst = int(np.argmin(ulps))
        if ulps[worst] >= MIN_ULPS:
            continue
        merged = int(np.count_nonzero(cast[1:] == cast[:-1]))
        if dtype == np.float64:
            fix = (
                "the window is narrower than float64 can resolve; widen it "
                "or use fewer points"
            )
        else:
            fix = (
                "set dtype: float64 (`dynamics run ... dtype=float64`, "
                "`dynamics zoom ... --dtype float64`)"
            )
        rounded = (
            f", and {merged} of {len(values)} values round to a value already taken"
            if merged
            else ""
        )
        lines.append(
            f"sweep axis '{axis.key}': neighbouring values near "
            f"{values[worst]:.7g} are {ulps[worst]:.2g} ulps of {dtype.name} "
            f"apart (fewer than {MIN_ULPS}){rounded}; {fix}"
        )
    return "\n".join(lines) or None


def _ascending(values):
    """The distinct values in ascending order; a linspace or logspace axis
    is already ordered, and sorting a hundred million values takes seconds."""
    values = np.asarray(values)
    if len(values) > 1:
        steps = np.diff(values)
        if (steps > 0).all():
            return values
        if (steps < 0).all():
            return values[::-1]
    return np.unique(values)


def refine(
    exp: "Experiment | Mapping | str",
    *,
    levels: int = 3,
    budget: int | None = None,
    margin: int = 0,
    progress: engine.Progress | None = None,
) -> xr.Dataset:
    """A map at ``2**levels`` times the resolution, simulated near its boundaries.

    The sweep's values are the coarse grid, all of it run. Each level puts a
    new point midway between neighbours on every axis (midway in log space on
    a logspace axis), so an axis of ``n`` points becomes ``2n - 1`` and holds
    the level before. A new point is run when a cell of the level before that
    holds it has corners that disagree; otherwise every such cell agrees and
    the point takes that label. The label is what the stability map draws:
    the regime, and for converged runs whether they overshot.

    Filling assumes no feature slips between agreeing corners: an island or
    a sliver narrower than the coarse spacing is missed. Start from a grid
    fine enough to catch every region once; on a rough or speckled boundary,
    a ``margin`` also refines the cells next to mixed ones, which catches
    slivers that reach out of the boundary at the cost of more runs.

    Args:
      exp: the experiment whose sweep is the coarse grid (anything
        :func:`dynamics.load_config` takes).
      levels: how many times to double the resolution.
      budget: most runs in all; refinement stops before a level that would
        go over it, with a :class:`BudgetWarning`.
      margin: also refine cells up to this many cells from a mixed one.
      progress: called as ``progress(done, total)``, counting runs so far;
        ``total`` grows as each level decides what it runs.

    Returns:
      A Dataset shaped like :func:`dynamics.run`'s at the final resolution,
      plus ``computed`` (True where simulated). In filled cells ``regime``
      and ``overshoot`` are those of the agreeing corners, other integer and
      boolean variables are copied from one of them, and floating variables
      are NaN. Attributes ``levels`` (doublings done), ``runs`` (simulated),
      ``effective_resolution`` and ``coarse_resolution`` (points per axis).

    Raises:
      ConfigError: nothing is swept, ``levels`` is not a whole number from 0
        to :data:`MAX_LEVELS`, ``budget`` is below the coarse grid, or
        ``margin`` is not a whole number from 0 to :data:`MAX_MARGIN`.

    >>> ds = refine({"objective": {"expr": "(w - 2)**2 + 1"}, "start": {"w": 0.0},
    ...              "optimizer": {"name": "sgd", "learning_rate": 0.1},
    ...              "sweep": {"optimizer.learning_rate":
    ...                        {"linspace": [0.1, 1.7], "num": 5}}}, levels=2)
    >>> ds.attrs["effective_resolution"], ds.attrs["runs"]
    ([17], 9)
    >>> ds["regime"].values.tolist()  # converged, cycling at lr = 1, diverged
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2]
    """
    started = time.perf_counter()
    exp = load_config(exp)
    _check_refine(exp, levels, budget, margin)
    finest = _finer(exp, levels)
    warn_resolution(finest)
    chunk = engine.chunk_size(exp)
    if exp.config["chunk_size"] is None:
        chunk = min(chunk, REFINE_CHUNK)
    runner = dataclasses.replace(finest, config={**finest.config, "chunk_size": chunk})
    axes = [axis.values for axis in finest.sweep]

    state = _Refinement(finest.shape)
    stride = 2**levels
    view = state.view(stride)
    state.simulate(
        runner, axes, view, stride, np.ones(exp.shape, bool), chunk, progress
    )
    done, note = 0, None
    for level in range(1, levels + 1):
        coarse = state.label[view]
        view = state.view(stride // 2)
        need = _spread(_widened(_mixed(coarse), margin), coarse.shape)
        new = ~state.known[view]
        run = need & new
        wanted = state.runs + int(run.sum())
        if budget is not None and wanted > budget:
            note = (
                f"refinement stopped after {done} of {levels} levels: the next "
                f"would bring the runs to {wanted:,}, over the budget of "
                f"{budget:,}; raise the budget or ask for fewer levels"
            )
            warnings.warn(note, BudgetWarning, stacklevel=2)
            break
        stride //= 2
        state.fill(view, new & ~need)
        state.simulate(runner, axes, view, stride, run, chunk, progress)
        done = level

    view = state.view(stride)
    final = finest
    if stride > 1:
        final = dataclasses.replace(
            _finer(exp, done),
            sweep=tuple(
                dataclasses.replace(axis, values=axis.values[::stride])
                for axis in finest.sweep
            ),
        )
    attrs = {
        "wall_seconds": round(time.perf_counter() - started, 3),
        "levels": done,
        "runs": state.runs,
        "effective_resolution": list(final.shape),
        "coarse_resolution": list(exp.shape),
        "margin": margin,
    }
    if note:
        attrs["refine_note"] = note
    return state.dataset(final, view, attrs)


def plot_refinement(ds: xr.Dataset, *, style: figures.Style | None = None) -> Figure:
    """The refined map beside the cells that were simulated to draw it.

    Args:
      ds: a Dataset from :func:`refine` (it has a ``computed`` variable).
        Over more than two sweep axes, the first value of the others is shown.
      style: size, font and palette; default from the config stored in ``ds``.
        When narrow, the two maps are stacked.
    """
    style = figures.Style.of(ds, style)
    with style.context():
        return _draw_refinement(ds, style)


def _draw_refinement(ds, style):
    classes_of = style.colours.classes()
    regime = ds["regime"]
    dims = list(regime.dims)
    x = dims[0]
    y = dims[1] if len(dims) > 1 else None
    fixed = {dim: 0 for dim in dims[2:]}
    classes = regime.copy(
        data=figures._class_index(np.asarray(regime), np.asarray(ds["overshoot"]))
    ).isel(fixed)
    computed = ds["computed"].isel(fixed)
    panels = [
        (
            classes,
            [colour for _, colour in classes_of],
            "regime",
        ),
        (
            computed.astype(np.int8),
            ["#FFFFFF", "#333333"],
            f"simulated: {int(computed.sum()):,} of {computed.size:,} cells "
            f"({float(computed.mean()):.1%})",
        ),
    ]
    fig = style.figure(0.5, narrow_aspect=1.7)
    shape = (2, 1) if style.narrow else (1, 2)
    axes = fig.subplots(*shape, sharex=True, sharey=True)
    for ax, (data, colours, title) in zip(axes, panels, strict=True):
        figures.draw_cells(ax, data, x, y, colours)
        ax.set_title(title, loc="left", fontsize=style.points)
    if style.narrow:
        axes[0].set_xlabel("")
    present = np.unique(np.asarray(panels[0][0]))
    fig.legend(
        handles=[
            Patch(facecolor=colour, edgecolor="0.4", linewidth=0.5, label=label)
            for index, (label, colour) in enumerate(classes_of)
            if index in present
        ],
        loc="outside lower center",
        ncols=3 if style.narrow else len(classes_of),
        frameon=False,
        fontsize=style.small if style.narrow else 0.9 * style.points,
    )
    coarse = " × ".join(str(n) for n in ds.attrs.get("coarse_resolution", []))
    final = " × ".join(str(n) for n in ds.attrs.get("effective_resolution", []))
    fig.suptitle(
        f"{ds.attrs.get('name', 'refined map')}: {final} from {coarse}, "
        f"{ds.attrs.get('levels', '?')} levels",
        x=0.01,
        ha="left",
    )
    return fig


# Refinement.


class _Refinement:
    """The finest grid's per-run arrays, filled level by level."""

    def __init__(self, shape):
        self.shape = shape
        self.label = np.zeros(shape, dtype=np.int16)
        self.known = np.zeros(shape, dtype=bool)
        self.computed = np.zeros(shape, dtype=bool)
        self.summary = None
        self.runs = 0

    def view(self, stride):
        """The nodes of the level whose points are ``stride`` apart."""
        return tuple(slice(None, None, stride) for _ in self.shape)

    def simulate(self, runner, axes, view, stride, run, chunk, progress):
        where = np.nonzero(run)
        count = len(where[0])
        if not count:
            return
        points = {
            axis.key: values[index * stride]
            for axis, values, index in zip(runner.sweep, axes, where, strict=True)
        }
        if count < chunk:
            # One program serves every level only if every call fills a chunk.
            points = {
                key: np.concatenate([column, np.repeat(column[-1:], chunk - count)])
                for key, column in points.items()
            }
        before = self.runs
        meter = None
        if progress:

            def meter(finished, _):
                progress(before + min(finished, count), before + count)

        summary = engine.simulate(runner, meter, points=points)
        summary = {name: np.asarray(column)[:count] for name, column in summary.items()}
        if self.summary is None:
            self.summary = {
                name: np.zeros(self.shape + column.shape[1:], dtype=column.dtype)
                for name, column in summary.items()
            }
        for name, column in summary.items():
            self.summary[name][view][where] = column
        self.label[view][where] = _label(summary)
        self.known[view][where] = True
        self.computed[view][where] = True
        self.runs += count

    def fill(self, view, mask):
        """Copies each masked node from the node below it on every axis.

        That node is a corner of every cell of the level before holding the
        masked one, and those cells agree, so it carries their label.
        """
        where = np.nonzero(mask)
        source = tuple((index // 2) * 2 for index in where)
        for array in [self.label, self.known, *self.summary.values()]:
            level = array[view]
            level[where] = level[source]

    def dataset(self, exp, view, attrs):
        computed = self.computed[view]
        summary = {}
        for name, array in self.summary.items():
            values = array[view].copy()
            if np.issubdtype(values.dtype, np.floating):
                values[~computed] = np.nan
            summary[name] = values.reshape((-1,) + values.shape[computed.ndim :])
        ds = results.to_dataset(exp, summary, attrs)
        ds["computed"] = (
            ds["regime"].dims,
            computed.copy(),
            {
                "long_name": "simulated; where False the cell's regime and "
                "overshoot are those of its agreeing neighbours, its other "
                "integer and boolean values copied from one of them, and its "
                "floating values NaN"
            },
        )
        return theory.attach(ds, exp)


def _label(summary):
    """What the map draws: the regime, split by overshoot for converged runs."""
    regime = np.asarray(summary["regime"]).astype(np.int16)
    return regime * 2 + np.asarray(summary["overshoot"]).astype(np.int16)


def _mixed(label):
    """Per cell of a node grid: do its corners' labels disagree?

    An axis of one node has no cells along it; it counts as one cell there.
    """
    corners = [
        (slice(None, -1), slice(1, None)) if n > 1 else (slice(None),)
        for n in label.shape
    ]
    picks = [label[index] for index in itertools.product(*corners)]
    return np.minimum.reduce(picks) != np.maximum.reduce(picks)


def _widened(mixed, margin):
    """Marks every cell within ``margin`` cells (on each axis) of a mixed one."""
    wide = mixed.copy()
    for shift in itertools.product(range(-margin, margin + 1), repeat=mixed.ndim):
        source, target = [], []
        for step, size in zip(shift, mixed.shape, strict=True):
            step = max(-size, min(step, size))
            source.append(slice(max(-step, 0), size - max(step, 0)))
            target.append(slice(max(step, 0), size - max(-step, 0)))
        wide[tuple(target)] |= mixed[tuple(source)]
    return wide


def _spread(mixed, nodes):
    """From the cells of a level to the nodes of the next: in a mixed cell?

    On an axis of ``nodes[axis] > 1`` nodes, cell ``i`` holds the new node
    ``2i + 1`` inside it and the nodes ``2i`` and ``2i + 2`` at its ends. A
    node is in a mixed cell when some cell holding it on every axis is mixed.
    """
    need = mixed
    for axis, count in enumerate(nodes):
        if count > 1:
            need = _spread_axis(need, axis)
    return need


def _spread_axis(mixed, axis):
    cells = mixed.shape[axis]
    shape = list(mixed.shape)
    shape[axis] = 2 * cells + 1
    out = np.zeros(shape, dtype=bool)

    def at(part):
        index = [slice(None)] * mixed.ndim
        index[axis] = part
        return tuple(index)

    out[at(slice(1, None, 2))] = mixed
    out[at(slice(0, -2, 2))] |= mixed
    out[at(slice(2, None, 2))] |= mixed
    return out


def _finer(exp, levels):
    """The experiment at ``2**levels`` times the resolution, nodes kept."""
    factor = 2**levels
    sweep = {}
    for axis, (key, spec) in zip(exp.sweep, exp.config["sweep"].items(), strict=True):
        count = (len(axis.values) - 1) * factor + 1
        if isinstance(spec, Mapping):
            sweep[key] = {**spec, "num": count}
        else:
            steps = np.linspace(0.0, 1.0, factor + 1)[:-1]
            values = axis.values
            inner = values[:-1, None] + steps * (values[1:] - values[:-1])[:, None]
            sweep[key] = [*inner.ravel().tolist(), float(values[-1])]
    return load_config({**exp.config, "sweep": sweep})


def _check_refine(exp, levels, budget, margin):
    if not exp.sweep:
        raise ConfigError(
            "refine needs a sweep: give the config at least one swept axis"
        )
    if isinstance(levels, bool) or not isinstance(levels, int):
        raise ConfigError(
            f"refine levels: {levels!r} is not a whole number; give how many "
            "times to double the resolution, such as 3"
        )
    if not 0 <= levels <= MAX_LEVELS:
        raise ConfigError(
            f"refine levels: {levels} is not from 0 to {MAX_LEVELS}; each level "
            "doubles the resolution, so 3 gives 8 times the coarse grid"
        )
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise ConfigError(
                f"refine budget: {budget!r} is not a whole number; give the most "
                "runs to spend, such as 20000"
            )
        if budget < exp.n_runs:
            raise ConfigError(
                f"refine budget: {budget:,} runs cannot cover the coarse grid of "
                f"{exp.n_runs:,}; give at least {exp.n_runs:,}, or fewer points "
                "per axis"
            )
    if (
        isinstance(margin, bool)
        or not isinstance(margin, int)
        or not 0 <= margin <= MAX_MARGIN
    ):
        raise ConfigError(
            f"refine margin: {margin!r} is not a whole number from 0 to "
            f"{MAX_MARGIN}; give how many cells around a mixed one to refine too, "
            "such as 1"
        )
    cells = math.prod((len(axis.values) - 1) * 2**levels + 1 for axis in exp.sweep)
    if cells > MAX_CELLS:
        raise ConfigError(
            f"refine levels: {levels} levels make a map of {cells:,} cells, more "
            f"than the {MAX_CELLS:,} it can hold in memory; use fewer levels"
        )


# Checks shared by zoom and window_around.


def _swept(exp, mapping, what):
    axes = {axis.key: axis for axis in exp.sweep}
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"zoom {what}: give a mapping from sweep key to "
            f"{'(low, high)' if what == 'window' else 'value'}, "
            f"not {type(mapping).__name__}"
        )
    for key in mapping:
        if key not in axes:
            close = difflib.get_close_matches(str(key), list(axes), n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"zoom {what}: '{key}' is not swept in this run; name one of its "
                f"swept keys: {', '.join(axes) or 'none'}{hint}"
            )
    return axes


def _bounds(key, bounds, scale):
    if (
        not isinstance(bounds, list | tuple)
        or len(bounds) != 2
        or not all(_finite_number(value) for value in bounds)
    ):
        raise ConfigError(
            f"zoom window {key}: {bounds!r} is not two numbers; give (low, high), "
            f"as in {key}=0.5:1.5 on the command line"
        )
    low, high = (float(value) for value in bounds)
    if not low < high:
        raise ConfigError(
            f"zoom window {key}={low:g}:{high:g}: the low end must be below the "
            f"high end; write {key}=LOW:HIGH with LOW < HIGH"
        )
    if scale == "log" and low <= 0:
        raise ConfigError(
            f"zoom window {key}={low:g}:{high:g}: {key} is a log axis "
            "(logspace), so both ends must be above 0; give a positive low end"
        )
    return low, high


def _spec(scale, low, high, num):
    if scale == "log":
        return {"logspace": [math.log10(low), math.log10(high)], "num": num}
    return {"linspace": [low, high], "num": num}


def _finite_number(value):
    return (
        isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    )


def warn_resolution(exp: Experiment) -> None:
    """Warns (:class:`ResolutionWarning`) when :func:`resolution_problem` finds one."""
    problem = resolution_problem(exp)
    if problem:
        warnings.warn(problem, ResolutionWarning, stacklevel=3)
