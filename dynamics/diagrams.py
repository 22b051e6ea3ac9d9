"""Finer pictures of a sweep: periods and chaos, bifurcation diagrams, basins.

Like :mod:`dynamics.figures`, each function takes a results Dataset and returns
a :class:`matplotlib.figure.Figure` built without pyplot.
"""

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from dynamics import figures
from dynamics.classify import CHAOS, Regime
from dynamics.figures import PALETTES, Style, _is_log, _label_axis

#: Periods 2 to 64 in six bands, light to dark: an ordered scale.
_PERIOD_COLOURS = [matplotlib.colormaps["viridis"](v) for v in (0.95, 0.8, 0.65)]
_PERIOD_COLOURS += [matplotlib.colormaps["viridis"](v) for v in (0.5, 0.38, 0.26)]
_NO_BASIN = (("diverged", "#404040"), ("not converged", "#D9D9D9"))


def period_classes(palette: str = "okabe_ito") -> tuple[tuple[str, str], ...]:
    """The period map's classes under a palette, in drawing order: (label,
    colour). The periods themselves take an ordered scale (viridis)."""
    colour = dict(PALETTES[palette].classes())
    return (
        ("fixed point", colour["converged"]),
        ("period 2", _PERIOD_COLOURS[0]),
        ("period 3", _PERIOD_COLOURS[1]),
        ("period 4", _PERIOD_COLOURS[2]),
        ("period 5–7", _PERIOD_COLOURS[3]),
        ("period 8", _PERIOD_COLOURS[4]),
        ("period 9–64", _PERIOD_COLOURS[5]),
        (f"aperiodic, λ ≤ {CHAOS:g}", "#999999"),
        (f"chaotic, λ > {CHAOS:g}", "#000000"),
        ("diverged", colour["diverged"]),
        ("stalled", colour["stalled"]),
        ("not run", colour["not run"]),
    )


#: The period map's classes under the default palette.
PERIOD_CLASSES = period_classes()


def basin_colours(palette: str = "okabe_ito") -> list:
    """Basin colours: the palette's own first, then a longer qualitative cycle."""
    colours = list(PALETTES[palette].qualitative)
    return colours + [matplotlib.colormaps["tab20"](i / 19) for i in range(20)]


def plot_period_map(
    ds, x: str | None = None, y: str | None = None, *, style: Style | None = None
) -> Figure:
    """The period of every run over two sweep axes, chaos apart.

    Converged runs are fixed points; oscillating runs are coloured by their
    period (up to 64), or as aperiodic or chaotic by their Lyapunov exponent
    when they have none. Needs ``lyapunov`` (``analysis.lyapunov: true``, the
    default) to tell chaos apart; without it aperiodic runs are all grey.
    ``style`` defaults to the one in the config stored in ``ds``.
    """
    style = Style.of(ds, style)
    regime = np.asarray(ds["regime"])
    period = np.asarray(ds["period"])
    chaotic = np.asarray(ds["chaotic"]) if "chaotic" in ds else np.zeros_like(period)
    index = np.full(regime.shape, len(PERIOD_CLASSES) - 1, dtype=np.int8)
    oscillating = regime == Regime.OSCILLATING
    bands = [(2, 2), (3, 3), (4, 4), (5, 7), (8, 8), (9, 64)]
    index[regime == Regime.CONVERGED] = 0
    for i, (low, high) in enumerate(bands, start=1):
        index[oscillating & (period >= low) & (period <= high)] = i
    index[oscillating & (period == 0)] = 7
    index[oscillating & (period == 0) & chaotic.astype(bool)] = 8
    index[regime == Regime.DIVERGED] = 9
    index[regime == Regime.STALLED] = 10
    classes = period_classes(style.palette)
    return _map(ds, index, classes, x, y, "period (cells)", style)


def plot_basin_map(
    ds, x: str | None = None, y: str | None = None, *, style: Style | None = None
) -> Figure:
    """Which minimum each run converged to, over two sweep axes.

    Each basin has its own colour, its minimum's coordinates in the legend.
    When the axes are the starting values of two parameters, each minimum is
    marked on the map with a star. ``style`` defaults to the one in the config
    stored in ``ds``.
    """
    style = Style.of(ds, style)
    if "basin" not in ds:
        raise ValueError(
            "this result has no basin variable: basins need analysis.basins "
            "(on by default) and at most 8 parameters"
        )
    basin = np.asarray(ds["basin"])
    minima = np.asarray(ds["basin_minimum"])
    names = [str(name) for name in np.asarray(ds["parameter"])]
    count = minima.shape[0]
    cycle = basin_colours(style.palette)
    colours = [cycle[i % len(cycle)] for i in range(count)]
    classes = [
        (f"{i}: " + ", ".join(f"{n}={v:.4g}" for n, v in zip(names, m, strict=True)), c)
        for i, (m, c) in enumerate(zip(minima, colours, strict=True))
    ]
    classes += list(_NO_BASIN)
    index = np.where(basin >= 0, basin, count + 1)
    index[np.asarray(ds["regime"]) == Regime.DIVERGED] = count
    fig = _map(ds, index, classes, x, y, "basin: minimum (cells)", style)
    ax = fig.axes[0]
    dims = [dim for dim in ds["basin"].dims]
    x = x or (dims[0] if dims else None)
    y = y or next((dim for dim in dims if dim != x), None)
    starts = {f"start.{name}": j for j, name in enumerate(names)}
    if x in starts and y in starts:
        ax.plot(
            minima[:, starts[x]],
            minima[:, starts[y]],
            linestyle="none",
            marker="*",
            markersize=1.2 * style.points,
            markerfacecolor="white",
            markeredgecolor="black",
        )
    return fig


def plot_bifurcation(ds, x: str | None = None, *, style: Style | None = None) -> Figure:
    """Late iterates against one swept value, the Lyapunov exponent below.

    Needs the ``orbit`` variable (``analysis.orbit``: a parameter or ``loss``).
    Other sweep axes are shown at their first value. A run that diverged
    leaves a gap; the exponent axis is clipped to the range of finite values.
    ``style`` defaults to the one in the config stored in ``ds``.
    """
    style = Style.of(ds, style)
    if "orbit" not in ds:
        raise ValueError(
            "this result has no orbit: set analysis.orbit to a parameter name "
            "or 'loss' and run again"
        )
    orbit = ds["orbit"]
    dims = [dim for dim in orbit.dims if dim != "orbit_step"]
    if not dims:
        raise ValueError("a bifurcation diagram needs a swept value")
    x = x or dims[0]
    fixed = {dim: 0 for dim in dims if dim != x}
    orbit = orbit.isel(fixed).sortby(x).transpose(x, "orbit_step")

    with style.context():
        fig = style.figure(6.0 / 7.2, narrow_aspect=1.2)
        top, bottom = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
        )
        _draw_bifurcation(ds, top, bottom, orbit, x, fixed, style)
    return fig


def _draw_bifurcation(ds, top, bottom, orbit, x, fixed, style):
    values = np.asarray(orbit[x], dtype=float)
    points = np.asarray(orbit, dtype=float)
    log = _is_log(orbit, x)
    colours = style.colours
    xs = np.repeat(values, points.shape[1])
    shown = np.isfinite(points.ravel())
    top.scatter(
        xs[shown],
        points.ravel()[shown],
        s=0.3,
        marker=".",
        color="black",
        alpha=0.35,
        linewidths=0,
        rasterized=True,
    )
    of = orbit.attrs.get("of", "orbit")
    top.set_ylabel(f"{of}: last {points.shape[1]} iterates")
    if of == "loss" and np.all(points[np.isfinite(points)] > 0):
        top.set_yscale("log")
    name = ds.attrs.get("name", "bifurcation diagram")
    figures.title(top, ds, name, fixed, style=style)
    if "lyapunov" in ds:
        exponent = np.asarray(ds["lyapunov"].isel(fixed).sortby(x), dtype=float)
        finite = np.isfinite(exponent)
        bottom.plot(
            values, np.where(finite, exponent, np.nan), color=colours.line, lw=0.8
        )
        if finite.any():
            low = max(np.min(exponent[finite]), -3.0)
            high = max(np.max(exponent[finite]), 0.1)
            bottom.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
        bottom.axhline(0.0, color="0.3", lw=0.6)
        bottom.axhline(
            CHAOS, color=colours.accent, lw=0.6, ls="--", label="chaos threshold"
        )
        bottom.legend(loc="lower left", frameon=False, fontsize=style.small)
        bottom.set_ylabel("Lyapunov exponent λ")
    else:
        bottom.text(0.5, 0.5, "analysis.lyapunov is off", ha="center", va="center")
        bottom.set_yticks([])
    _label_axis(bottom, "x", orbit, x)
    if log:
        top.set_xscale("log")


def _map(ds, index, classes, x, y, legend_title, style):
    return figures.class_map(
        ds,
        index,
        classes,
        x,
        y,
        legend_title,
        style=style,
        legend_size=style.small,
    )
