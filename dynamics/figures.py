"""Figures: the stability map, the cost curve with its tangent, the descent path.

Each function returns a :class:`matplotlib.figure.Figure` built without pyplot,
so it works the same in a script, a notebook or a headless server;
:func:`save` writes it as PNG, SVG or PDF.
"""

import os

import jax
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dynamics import engine, objectives
from dynamics.classify import Regime
from dynamics.config import Experiment

#: The map's classes, in drawing order: (label, colour). Okabe–Ito colours,
#: which stay distinct under the common colour-vision deficiencies; overshoot is
#: the lighter shade of converged.
CLASSES = (
    ("converged", "#0072B2"),
    ("converged, overshoot", "#56B4E9"),
    ("oscillating", "#E69F00"),
    ("diverged", "#D55E00"),
    ("stalled", "#CC79A7"),
    ("not run", "#E8E8E8"),
)
#: Most cells drawn along an axis of a map (see :func:`draw_cells`).
MAX_DRAWN = 2048


def plot_stability_map(ds, x: str | None = None, y: str | None = None) -> Figure:
    """The regime of every run over two sweep axes.

    Args:
      ds: a results Dataset, as returned by :func:`dynamics.run`.
      x: the sweep key on the horizontal axis (default: the first).
      y: the sweep key on the vertical axis (default: the second, if any).
        Further sweep axes are shown at their first value, named in the title.

    Values increase rightwards and upwards. Every class is in the legend, even
    when absent. Each cell is one flat colour: nothing is blended.
    """
    index = _class_index(np.asarray(ds["regime"]), np.asarray(ds["overshoot"]))
    return class_map(ds, index, CLASSES, x, y, "regime (cells)")


def class_map(
    ds,
    index,
    classes,
    x: str | None = None,
    y: str | None = None,
    legend_title: str = "",
    figsize=(7.2, 5.0),
    fontsize=None,
) -> Figure:
    """A map of one class per run over two sweep axes, each class its colour.

    Args:
      ds: a results Dataset.
      index: per run (shaped like ``ds["regime"]``), the index of its class.
      classes: ``(label, colour)`` pairs; every one is in the legend with its
        count of cells, even when absent.
      x, y, legend_title: as in :func:`plot_stability_map`.
    """
    regime = ds["regime"]
    dims = list(regime.dims)
    x = x or (dims[0] if dims else None)
    y = y or next((dim for dim in dims if dim != x), None)
    fixed = {dim: 0 for dim in dims if dim not in (x, y)}
    da = regime.copy(data=np.asarray(index)).isel(fixed)

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    image = draw_cells(ax, da, x, y, [colour for _, colour in classes])
    if x is None:
        ax.set_xticks([])
        ax.set_xlabel("a single run (no sweep)")
    if y is None:
        ax.set_yticks([])

    counts = np.bincount(image.ravel(), minlength=len(classes))
    handles = [
        Patch(
            facecolor=colour, edgecolor="0.4", linewidth=0.5, label=f"{label} ({n:,})"
        )
        for (label, colour), n in zip(classes, counts, strict=True)
    ]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        title=legend_title,
        fontsize=fontsize,
    )
    title(ax, ds, ds.attrs.get("name", "map"), fixed)
    return fig


def draw_cells(ax, da, x, y, colours) -> np.ndarray:
    """Draws class indices over sweep axes ``x`` and ``y``, one flat colour a
    cell (values rising rightwards and upwards), labels the axes, and returns
    the image drawn, rows along ``y``."""
    for dim in (x, y):
        if dim is not None:
            da = da.sortby(dim)
    order = [dim for dim in (y, x) if dim is not None]
    image = np.asarray(da.transpose(*order)) if order else np.asarray(da)
    image = image.reshape(1 if y is None else image.shape[0], -1)
    # A figure has a few thousand pixels a side: past MAX_DRAWN cells an axis
    # is drawn every k-th cell (over its true edges), as a raster would show it,
    # and matplotlib does not hold a mesh of millions of quads.
    (rows, row_edges), (cols, col_edges) = (
        _stride(image.shape[0], _edges(da, y)),
        _stride(image.shape[1], _edges(da, x)),
    )
    ax.pcolormesh(
        col_edges,
        row_edges,
        image[rows, cols],
        cmap=ListedColormap(colours),
        norm=BoundaryNorm(np.arange(len(colours) + 1) - 0.5, len(colours)),
        shading="flat",
        antialiased=False,
        edgecolors="none",
        linewidth=0,
        rasterized=True,
    )
    for which, dim in (("x", x), ("y", y)):
        if dim is not None:
            _label_axis(ax, which, da, dim)
    return image


def title(ax, ds, text, fixed=()):
    """The run's name (and any sweep axes held fixed) over a line describing it."""
    if fixed:
        text += "  at " + ", ".join(f"{dim} = {float(ds[dim][0]):.4g}" for dim in fixed)
    ax.set_title(text, loc="left", pad=14)
    ax.text(
        0.0,
        1.01,
        _subtitle(ds).strip(),
        transform=ax.transAxes,
        fontsize=8,
        va="bottom",
        ha="left",
        color="0.3",
    )


def _subtitle(ds):
    """One line naming the objective, optimizer and step count, when known."""
    try:
        import yaml

        config = yaml.safe_load(ds.attrs["config"])
        swept = {
            dim.split(".", 1)[1]
            for dim in ds["regime"].dims
            if dim.startswith("objective.")
        }
        shown = {k: v for k, v in config["objective"].items() if k not in swept}
        objective = _short(objectives.describe(shown), 70)
        return (
            f"\n{objective}, {config['optimizer']['name']}, "
            f"{config['steps']} steps, {config['dtype']}"
        )
    except (KeyError, TypeError, ValueError):
        return ""


def plot_cost_tangent(exp: Experiment) -> Figure:
    """The cost curve around the start, with the tangent there and its slope."""
    name, loss, slope_at = _one_dimensional(exp)
    w0 = float(exp.config["start"][name])
    lo, hi = _curve_range(exp, [w0])
    w = np.linspace(lo, hi, 400)
    j0, slope = float(loss(w0)), float(slope_at(w0))

    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(
        w,
        loss(w),
        color="#0072B2",
        lw=2,
        label=_short(objectives.describe(exp.config["objective"])),
    )
    if np.isfinite(j0) and np.isfinite(slope):
        span = np.array([lo, hi])
        ax.plot(
            span,
            j0 + slope * (span - w0),
            color="#D55E00",
            lw=1.5,
            ls="--",
            label=f"tangent at {name} = {w0:g}: slope J'({w0:g}) = {slope:.4g}",
        )
        ax.plot([w0], [j0], "o", color="#D55E00", ms=7, zorder=3)
        ax.annotate(
            f"slope {slope:.4g}",
            (w0, j0),
            xytext=(-12, -22),
            textcoords="offset points",
            ha="right",
            color="#D55E00",
            fontweight="bold",
        )
    else:
        ax.axvline(
            w0,
            color="#D55E00",
            ls=":",
            label=f"start {name} = {w0:g}: J = {j0:g}, slope {slope:g} (no tangent)",
        )
    _clip_to_curve(ax, loss(w))
    ax.set_xlabel(name)
    ax.set_ylabel(f"J({name})")
    ax.set_title("cost and tangent")
    ax.legend(loc="upper center", frameon=False)
    return fig


def plot_descent_path(exp: Experiment, path: engine.Path | None = None) -> Figure:
    """The path of the configured run down the cost curve, and its loss by step."""
    name, loss, _ = _one_dimensional(exp)
    path = path or engine.path(exp)
    ws, losses = path.params[name], path.loss
    finite = np.isfinite(ws) & np.isfinite(losses)
    lo, hi = _curve_range(exp, ws[finite])
    w = np.linspace(lo, hi, 400)
    rate = _rate_text(exp.config["optimizer"])

    fig = Figure(figsize=(10.0, 4.2), layout="constrained")
    ax, ax_loss = fig.subplots(1, 2, width_ratios=(3, 2))
    ax.plot(w, loss(w), color="0.55", lw=1.5, zorder=1)
    ax.plot(
        ws[finite],
        losses[finite],
        "-o",
        color="#0072B2",
        ms=3,
        lw=0.8,
        zorder=2,
        label="iterates",
    )
    ax.plot(
        [ws[0]] if finite[0] else [],
        [losses[0]] if finite[0] else [],
        "o",
        color="#009E73",
        ms=9,
        zorder=3,
        label=f"start {name} = {ws[0]:.4g}",
    )
    if finite.any():
        end = int(np.flatnonzero(finite)[-1])
        last = "end" if end == len(ws) - 1 else "last finite"
        ax.plot(
            [ws[end]],
            [losses[end]],
            "s",
            color="#D55E00",
            ms=8,
            zorder=3,
            label=f"{last} {name} = {ws[end]:.4g} (step {end})",
        )
    else:
        ax.text(
            0.5,
            0.5,
            "the loss is not finite at the start",
            ha="center",
            transform=ax.transAxes,
            color="#D55E00",
        )
    _clip_to_curve(ax, np.concatenate([loss(w), losses[finite]]))
    ax.set_xlabel(name)
    ax.set_ylabel(f"J({name})")
    ax.set_title(
        f"{exp.config['optimizer']['name']}, learning rate {rate}, {len(ws) - 1} steps"
    )
    ax.legend(loc="upper center", frameon=False)

    steps = np.arange(len(losses))
    ax_loss.plot(steps[finite], losses[finite], color="#0072B2", lw=1.2)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel(f"J({name})")
    if finite.any():
        low, high = float(np.min(losses[finite])), float(np.max(losses[finite]))
        if low > 0 and high > 100 * low:
            ax_loss.set_yscale("log")
    ax_loss.set_title("loss by step")
    return fig


def save(
    fig: Figure,
    folder: str,
    stem: str,
    fmt: str = "png",
    dpi: int = 150,
    description: str = "",
) -> str:
    """Writes ``fig`` as ``folder/stem.fmt`` and returns the path."""
    path = os.path.join(folder, f"{stem}.{fmt}")
    keys = {
        "png": ("Software", "Description"),
        "svg": ("Creator", "Description"),
        "pdf": ("Creator", "Subject"),
    }[fmt]
    from dynamics import __version__

    metadata = dict(zip(keys, (f"dynamics {__version__}", description), strict=True))
    fig.savefig(path, format=fmt, dpi=dpi, metadata=metadata)
    return path


def _class_index(regime, overshoot):
    index = np.full(regime.shape, 5, dtype=np.int8)
    index[regime == Regime.CONVERGED] = 0
    index[(regime == Regime.CONVERGED) & overshoot] = 1
    index[regime == Regime.OSCILLATING] = 2
    index[regime == Regime.DIVERGED] = 3
    index[regime == Regime.STALLED] = 4
    return index


def _is_log(da, dim):
    values = np.asarray(da[dim], dtype=float)
    return da[dim].attrs.get("scale") == "log" and bool(np.all(values > 0))


def _stride(count, edges):
    """Every k-th of ``count`` cells, and their edges, so at most MAX_DRAWN."""
    step = -(-count // MAX_DRAWN)
    kept = edges[::step]
    if count % step:
        kept = np.append(kept, edges[-1])
    return slice(None, None, step), kept


def _edges(da, dim):
    """Cell edges around each coordinate value: midpoints, geometric on log axes."""
    if dim is None:
        return np.array([0.0, 1.0])
    values = np.asarray(da[dim], dtype=float)
    log = _is_log(da, dim)
    v = np.log(values) if log else values
    if len(v) == 1:
        half = 0.5 * (abs(v[0]) or 1.0) if not log else 0.5
        edges = np.array([v[0] - half, v[0] + half])
    else:
        mid = 0.5 * (v[1:] + v[:-1])
        edges = np.concatenate(
            [[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]]
        )
    # The outer edges lie half a cell beyond the last values, which may not fit
    # in a float when those values are already near its limits.
    # Matplotlib's log ticks need some headroom below the largest float.
    limit = np.log(1e300) if log else 1e300
    edges = np.clip(edges, -limit, limit)
    return np.exp(edges) if log else edges


def _label_axis(ax, which, da, dim):
    log = _is_log(da, dim)
    if log:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    label = dim + (" (log scale)" if log else "")
    (ax.set_xlabel if which == "x" else ax.set_ylabel)(label)


def _one_dimensional(exp):
    name = objectives.scalar_parameter(exp.config)
    if name is None:
        raise ValueError(
            "the cost-curve figures need an objective of one scalar parameter"
        )
    x64 = exp.dtype == "float64"
    with jax.enable_x64(x64):
        problem = objectives.build(exp.config, exp.dtype)
        curve = jax.jit(jax.vmap(lambda value: problem.loss({name: value})))
        grad = jax.jit(jax.grad(lambda value: problem.loss({name: value})))

    def loss(w):
        with jax.enable_x64(x64):
            values = curve(np.atleast_1d(np.asarray(w, dtype=exp.dtype)))
        values = np.asarray(values, dtype=float)
        return values if np.ndim(w) else values[0]

    def slope(w0):
        with jax.enable_x64(x64):
            return float(grad(np.asarray(w0, dtype=exp.dtype)))

    return name, loss, slope


def _curve_range(exp, points):
    """An interval around the start that also shows the given points."""
    name = exp.param_names[0]
    values = [float(exp.config["start"][name]), *map(float, points)]
    for axis in exp.sweep:
        if axis.key == f"start.{name}":
            values += [float(axis.values.min()), float(axis.values.max())]
    lo, hi = min(values), max(values)
    width = max(hi - lo, 1.0, 0.5 * abs(lo + hi))
    return lo - 0.25 * width, hi + 0.25 * width


def _clip_to_curve(ax, values):
    finite = np.asarray(values)[np.isfinite(values)]
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        pad = 0.08 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + pad)


def _rate_text(optimizer):
    rate = optimizer["learning_rate"]
    text = ", ".join(f"{r:g}" for r in rate) if isinstance(rate, list) else f"{rate:g}"
    if optimizer.get("schedule") and optimizer["schedule"]["name"] != "constant":
        text += f" × {optimizer['schedule']['name']}"
    return text


def _short(text, limit=60):
    """A formula cut to fit a title or legend."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
