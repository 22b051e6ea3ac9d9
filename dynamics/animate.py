"""Animations: the descent path step by step, and a zoom into a regime boundary.

:func:`animate_path` replays the configured run as a GIF, the way the original
notebook did: on the cost curve with its tangent for one scalar parameter, on
filled contours for two, and as the loss against the step otherwise.
:func:`animate_zoom` draws the stability map of ever smaller windows around a
point of the converged/diverged boundary; :func:`zoom_maps` returns those maps
as Datasets. Both GIFs are written with Pillow, which ships with matplotlib.

>>> import os, tempfile
>>> from PIL import Image
>>> exp = {"objective": {"expr": "(w - 2)**2 + 1"}, "start": {"w": 0.0},
...        "optimizer": {"name": "sgd", "learning_rate": 0.1}, "steps": 20}
>>> gif = animate_path(exp, os.path.join(tempfile.mkdtemp(), "path.gif"),
...                    max_frames=5)
>>> with Image.open(gif) as image:
...     image.n_frames
5
"""

import copy
import datetime
import os
from typing import Any

import jax
import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter
from PIL import Image

from dynamics import engine, figures, objectives, results
from dynamics.classify import Regime
from dynamics.config import Experiment, load_config

#: The colours of the moving parts: the current iterate, the path behind it,
#: the tangent and the start (Okabe–Ito, as in :mod:`dynamics.figures`).
CURRENT, PAST, TANGENT, START = "#D55E00", "#E69F00", "#009E73", "#F0E442"
CURVE = "#0072B2"
# A path whose extent outgrows that of its first step this many times is followed
# (the view widens frame by frame) instead of shown whole from the start.
_FOLLOW = 100.0
_GRID = 120


def animate_path(
    exp: Any,
    filename: str,
    *,
    steps: int | None = None,
    fps: float = 10,
    max_frames: int = 120,
    dpi: int = 80,
    command: str | None = None,
) -> str:
    """Writes the configured run's descent as an animated GIF.

    The run is the unswept one of :func:`dynamics.engine.path`: the config's own
    start and optimizer. What is drawn depends on the parameters:

    - one scalar: the cost curve, the tangent at the current iterate (slope
      J'(w)), the current point and the earlier ones fading;
    - two scalars (``rosenbrock``, ``himmelblau``, an ``expr`` in x and y):
      filled contours of the loss, log-spaced when it spans decades, and the
      path growing over them;
    - anything larger: the loss against the step, growing.

    Every frame says ``step k / T`` and the current values. A run whose loss or
    parameters stop being finite is drawn up to its last finite iterate, and a
    last frame says ``diverged at step k``. A path that runs away (its extent
    grows a hundredfold past that of its first step) is followed: the view
    widens frame by frame. With more than ``max_frames`` iterates, the frames
    are evenly spaced steps.

    Args:
      exp: an :class:`~dynamics.config.Experiment`, or anything
        :func:`~dynamics.config.load_config` reads; any sweep is ignored.
      filename: where to write the GIF.
      steps: steps to run (default: the config's ``steps``).
      fps: frames per second.
      max_frames: the most frames to draw, the diverged frame included.
      dpi: pixels per inch of the 6.4 × 4.4 inch frame.
      command: the command line recorded with the provenance (default: this
        process's).

    Returns:
      ``filename``.

    Raises:
      ValueError: for ``fps`` not positive, or ``max_frames`` under 2.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, not {fps}")
    if max_frames < 2:
        raise ValueError(f"max_frames must be at least 2, not {max_frames}")
    exp = load_config(exp)
    path = engine.path(exp, steps)
    finite = np.isfinite(path.loss)
    for values in path.params.values():
        finite &= np.isfinite(values.reshape(len(path.loss), -1)).all(axis=1)
    bad = np.flatnonzero(~finite)
    diverged_at = int(bad[0]) if bad.size else None
    count = len(path.loss) if diverged_at is None else diverged_at
    shown = _frame_steps(count, max_frames - (diverged_at is not None))

    fig = Figure(figsize=(6.4, 4.4))
    scene = _scene(exp, path, count, fig)
    rate = figures._rate_text(exp.config["optimizer"])
    fig.suptitle(
        f"{figures._short(objectives.describe(exp.config['objective']), 48)}, "
        f"{exp.config['optimizer']['name']}, learning rate {rate}",
        x=0.02,
        ha="left",
        fontsize=10,
    )
    started = _now()
    images = []
    for k in shown:
        scene.draw(k, f"step {k} / {len(path.loss) - 1} · {scene.values(k)}")
        images.append(_frame(fig, dpi))
    if diverged_at is not None:
        last = f"; drawn to step {count - 1}" if count else ""
        scene.draw(count - 1, f"diverged at step {diverged_at}{last}")
        images.append(_frame(fig, dpi))
    about = {"animation": "descent path", "steps": len(path.loss) - 1}
    _save(images, filename, fps, _provenance(exp, started, about, command))
    return os.fspath(filename)


def zoom_maps(
    exp: Any,
    *,
    center: dict | None = None,
    follow: bool | None = None,
    factor: float = 0.5,
    frames: int = 8,
    resolution: int = 64,
    progress: engine.Progress | None = None,
) -> list[xr.Dataset]:
    """Stability maps of ever smaller windows around one point of the sweep.

    The window spans the whole of the first two sweep axes at first and shrinks
    by ``factor`` per frame around its centre; a log-spaced axis shrinks in log
    space. Further sweep axes stay at their first value. While the window is
    narrower than the sweep, it is shifted to stay inside it.

    Following the boundary, each map's converged cell next to a diverged one
    (else next to any other regime) nearest the current centre gives the next
    centre: the midpoint of the two cells. The zoom thus stays on the boundary
    however it winds.

    Args:
      exp: an experiment, or anything :func:`~dynamics.config.load_config`
        reads, with at least two sweep axes.
      center: ``{sweep key: value}`` for both zoomed keys: the first centre
        (default: the middle of the sweep).
      follow: whether to follow the boundary (default: only without
        ``center``; with it, the zoom stays on that point).
      factor: the width of each window over the one before, in (0, 1).
      frames: how many maps.
      resolution: values per axis in each map.
      progress: passed on to :func:`dynamics.engine.simulate` for each map.

    Returns:
      One results Dataset per frame, as :func:`dynamics.run` returns, with the
      attributes ``zoom`` (the frame's index) and ``magnification``.

    Raises:
      ValueError: for fewer than two sweep axes, an axis of one value, or
        arguments out of range.
    """
    exp = load_config(exp)
    keys, logs, full, focus = _zoom_start(exp, center, factor, frames, resolution)
    follow = center is None if follow is None else follow
    maps = []
    for index in range(frames):
        width = (full[:, 1] - full[:, 0]) * factor**index
        window = full.copy()
        if index:
            window = np.stack([focus - width / 2, focus + width / 2], axis=1)
        for axis in range(2):
            if full[axis, 0] <= focus[axis] <= full[axis, 1]:
                # Slide the window back inside the sweep, keeping its width.
                shift = max(full[axis, 0] - window[axis, 0], 0.0)
                shift -= max(window[axis, 1] + shift - full[axis, 1], 0.0)
                window[axis] += shift
        frame_exp = _windowed(exp, window, logs, resolution)
        summary = engine.simulate(frame_exp, progress=progress)
        ds = results.to_dataset(
            frame_exp, summary, {"zoom": index, "magnification": factor**-index}
        )
        maps.append(ds)
        if follow:
            focus = _boundary_point(ds, keys, logs, focus, width)
    return maps


def animate_zoom(
    exp: Any,
    filename: str,
    *,
    center: dict | None = None,
    follow: bool | None = None,
    factor: float = 0.5,
    frames: int = 8,
    resolution: int = 64,
    fps: float = 2,
    dpi: int = 80,
    progress: engine.Progress | None = None,
    command: str | None = None,
) -> str:
    """Writes a zoom into the stability map's boundary as an animated GIF.

    Each frame is :func:`dynamics.figures.plot_stability_map` of one map of
    :func:`zoom_maps` (which see for the arguments), titled with its
    magnification and the window's widths, on one fixed layout of 7.2 × 5
    inches at ``dpi``. ``command`` is the command line recorded with the
    provenance (default: this process's).

    Returns:
      ``filename``.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, not {fps}")
    exp = load_config(exp)
    started = _now()
    maps = zoom_maps(
        exp,
        center=center,
        follow=follow,
        factor=factor,
        frames=frames,
        resolution=resolution,
        progress=progress,
    )
    images = []
    for ds in maps:
        keys = ds["regime"].dims[:2]
        widths = " × ".join(_width_text(ds, key) for key in keys)
        ds.attrs["name"] = (
            f"{exp.name}, zoom ×{ds.attrs['magnification']:.4g}: window {widths}"
        )
        fig = figures.plot_stability_map(ds, style=figures.Style())
        # One layout for every frame, so that the map stays put.
        fig.set_layout_engine("none")
        ax = fig.axes[0]
        ax.set_position((0.11, 0.11, 0.5, 0.78))
        for key, axis in zip(keys, (ax.xaxis, ax.yaxis), strict=False):
            values = np.asarray(ds[key].values, dtype=float)
            if ds[key].attrs.get("scale") != "log" or values.max() < 10 * values.min():
                # Few ticks, plainly labelled: deep in a zoom the default ones
                # crowd (and on a log axis under a decade, every minor one is).
                axis.set_major_locator(MaxNLocator(5))
                axis.set_major_formatter(ScalarFormatter(useOffset=False))
                axis.set_minor_formatter(NullFormatter())
        images.append(_frame(fig, dpi))
    about = {
        "animation": "zoom into the stability map",
        "center": "the boundary, followed"
        if center is None
        else ", ".join(f"{key}={value:.17g}" for key, value in center.items()),
        "last window": ", ".join(
            f"{key} {float(ds[key].min()):.8g} to {float(ds[key].max()):.8g}"
            for ds in maps[-1:]
            for key in ds["regime"].dims[:2]
        ),
        "factor": factor,
        "frames": len(maps),
        "resolution": resolution,
    }
    _save(images, filename, fps, _provenance(exp, started, about, command))
    return os.fspath(filename)


def _frame(fig, dpi):
    """``fig`` drawn at ``dpi``, as an RGB image."""
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")


def _save(images, filename, fps, comment):
    """The frames as a looping GIF, with ``comment`` in its comment extension."""
    images[0].save(
        filename,
        save_all=True,
        append_images=images[1:],
        duration=int(1000 / fps),
        loop=0,
        comment=comment.encode("utf-8"),
    )


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _provenance(exp, started, about, command=None):
    """What a figure's metadata records (:data:`dynamics.api.PROVENANCE`),
    what the animation shows, and the config last, as ``name: text`` lines."""
    from dynamics import api

    attrs = results.provenance(exp)
    attrs |= {"started": started, "ended": _now(), "command": command or api._command()}
    lines = [f"{key}: {value}" for key, value in about.items()]
    lines += [f"{key}: {value}" for key, value in api.figure_metadata(attrs).items()]
    return "\n".join([*lines, "config:", attrs["config"]])


# The scenes of animate_path: each draws one frame of the path.


class _Scene:
    """Draws frame ``k`` of a path; ``values(k)`` describes the iterate k."""

    def __init__(self, exp, path, count, fig):
        self.exp, self.path, self.count, self.fig = exp, path, count, fig
        self.ax = fig.add_axes((0.11, 0.12, 0.84, 0.72))
        self.names = list(path.params)
        self.view = None
        self.moving = []

    def draw(self, k, caption):
        if k < 0:
            self.ax.clear()
            self.ax.text(0.5, 0.5, "the loss is not finite at the start", ha="center")
            self.ax.set_title(caption, loc="left", fontsize=9, family="monospace")
            return
        view = self.view_at(k)
        if view != self.view:
            self.ax.clear()
            self.moving = []
            self.background(view)
            self.view = view
        for artist in self.moving:
            artist.remove()
        self.moving = self.foreground(k)
        self.ax.set_title(caption, loc="left", fontsize=9, family="monospace")

    def view_at(self, k):
        return None

    def background(self, view):
        pass


class _Curve(_Scene):
    """One scalar parameter: the curve, the tangent and the iterates on it."""

    def __init__(self, exp, path, count, fig):
        super().__init__(exp, path, count, fig)
        self.name, self.loss, self.slope = figures._one_dimensional(exp)
        self.w = np.asarray(path.params[self.name], dtype=float)
        self.j = np.asarray(path.loss, dtype=float)
        self.follow = _runs_away(self.w[:count])

    def values(self, k):
        return f"{self.name} = {self.w[k]:.4g} · J({self.name}) = {self.j[k]:.4g}"

    def view_at(self, k):
        return _span(self.w[: (k + 1 if self.follow else self.count)])

    def background(self, view):
        ax = self.ax
        grid = np.linspace(*view, 400)
        curve = self.loss(grid)
        ax.plot(grid, curve, color=CURVE, lw=2, label=f"J({self.name})")
        ax.plot([], [], color=TANGENT, lw=1.5, ls="--", label="tangent, slope J'")
        ax.set_xlim(*view)
        figures._clip_to_curve(ax, curve)
        ax.set_xlabel(self.name)
        ax.set_ylabel(f"J({self.name})")
        ax.legend(loc="upper center", frameon=False, fontsize=8)

    def foreground(self, k):
        ax, w, j = self.ax, self.w, self.j
        artists = []
        if k > 0:
            fade = np.linspace(0.2, 0.9, k)[:, None] * [0, 0, 0, 1]
            colours = np.clip(np.array([*to_rgb(PAST), 0.0]) + fade, 0, 1)
            artists.append(ax.scatter(w[:k], j[:k], s=18, c=colours, zorder=3))
        slope = self.slope(w[k])
        if np.isfinite(slope):
            half = 0.2 * (self.view[1] - self.view[0])
            span = np.array([w[k] - half, w[k] + half])
            artists += ax.plot(
                span, j[k] + slope * (span - w[k]), color=TANGENT, lw=1.5, ls="--"
            )
        artists += ax.plot([w[k]], [j[k]], "o", color=CURRENT, ms=9, zorder=4)
        artists.append(
            ax.annotate(
                f"slope {slope:.3g}",
                (w[k], j[k]),
                xytext=(8, 10),
                textcoords="offset points",
                fontsize=8,
                color="0.2",
            )
        )
        return artists


class _Plane(_Scene):
    """Two scalar parameters: filled contours and the path over them."""

    def __init__(self, exp, path, count, fig):
        super().__init__(exp, path, count, fig)
        self.xy = np.stack([path.params[n] for n in self.names], axis=1).astype(float)
        self.follow = _runs_away(self.xy[:count, 0]) or _runs_away(self.xy[:count, 1])
        x64 = exp.dtype == "float64"
        with jax.enable_x64(x64):
            loss = objectives.build(exp.config, exp.dtype).loss
            names = self.names
            self.surface = jax.jit(
                jax.vmap(lambda x, y: loss(dict(zip(names, (x, y), strict=True))))
            )
        self.x64 = x64
        self.ax.set_position((0.1, 0.12, 0.74, 0.72))
        self.cax = fig.add_axes((0.86, 0.12, 0.02, 0.72))

    def values(self, k):
        (a, b), (x, y) = self.names, self.xy[k]
        return f"({a}, {b}) = ({x:.3g}, {y:.3g}) · J = {self.path.loss[k]:.4g}"

    def view_at(self, k):
        points = self.xy[: (k + 1 if self.follow else self.count)]
        return _span(points[:, 0], 0.15) + _span(points[:, 1], 0.15)

    def background(self, view):
        ax = self.ax
        x = np.linspace(view[0], view[1], _GRID)
        y = np.linspace(view[2], view[3], _GRID)
        gx, gy = np.meshgrid(x, y)
        with jax.enable_x64(self.x64):
            z = self.surface(
                gx.ravel().astype(self.exp.dtype), gy.ravel().astype(self.exp.dtype)
            )
        z = np.asarray(z, dtype=float).reshape(gx.shape)
        self.cax.clear()
        finite = z[np.isfinite(z)]
        if finite.size and finite.max() > finite.min():
            self.contours(gx, gy, z, finite)
            self.cax.tick_params(labelsize=7)
            self.cax.set_title("J", fontsize=8)
        else:
            self.cax.set_axis_off()
        ax.set_xlim(view[0], view[1])
        ax.set_ylim(view[2], view[3])
        ax.set_xlabel(self.names[0])
        ax.set_ylabel(self.names[1])
        ax.plot(*self.xy[0], "o", color=START, mec="k", ms=7, zorder=3)

    def contours(self, gx, gy, z, finite):
        """Filled contours, log-spaced when the loss spans three decades or more."""
        top, positive = float(finite.max()), finite[finite > 0]
        if finite.min() >= 0 and positive.size and top > 1e3 * positive.min():
            levels = _log_levels(max(float(positive.min()), top * 1e-6), top)
            z = np.clip(z, levels[0], levels[-1])
            fill = self.ax.contourf(gx, gy, z, levels, norm=LogNorm(), cmap="bone")
            bar = self.fig.colorbar(fill, cax=self.cax)
            # Ticks at the powers of ten: the colourbar would thin the levels
            # unevenly and leave them unlabelled.
            powers = np.log10(levels)
            bar.set_ticks(levels[np.isclose(powers, np.round(powers))])
        else:
            z = np.clip(z, float(finite.min()), top)
            fill = self.ax.contourf(gx, gy, z, 20, cmap="bone")
            self.fig.colorbar(fill, cax=self.cax)

    def foreground(self, k):
        ax, xy = self.ax, self.xy
        artists = ax.plot(xy[: k + 1, 0], xy[: k + 1, 1], "-", color=PAST, lw=1.6)
        artists += ax.plot(*xy[k], "o", color=CURRENT, mec="w", ms=9, zorder=4)
        return artists


class _Loss(_Scene):
    """Many parameters: the loss against the step."""

    def __init__(self, exp, path, count, fig):
        super().__init__(exp, path, count, fig)
        self.loss = np.asarray(path.loss, dtype=float)
        seen = self.loss[:count]
        self.log = bool(count) and seen.min() > 0 and seen.max() > 100 * seen.min()

    def values(self, k):
        return f"J = {self.loss[k]:.4g}"

    def view_at(self, k):
        return "whole run"

    def background(self, view):
        ax = self.ax
        ax.set_xlim(0, len(self.loss) - 1)
        if self.count:
            seen = self.loss[: self.count]
            low, high = float(seen.min()), float(seen.max())
            if self.log:
                ax.set_yscale("log")
                ax.set_ylim(low / 1.5, high * 1.5)
            else:
                pad = 0.08 * (high - low or 1.0)
                ax.set_ylim(low - pad, high + pad)
        ax.set_xlabel("step")
        ax.set_ylabel("J")

    def foreground(self, k):
        steps = np.arange(k + 1)
        artists = self.ax.plot(steps, self.loss[: k + 1], color=CURVE, lw=1.2)
        artists += self.ax.plot([k], [self.loss[k]], "o", color=CURRENT, ms=8)
        return artists


def _scene(exp, path, count, fig):
    if objectives.scalar_parameter(exp.config) is not None:
        return _Curve(exp, path, count, fig)
    scalars = [np.ndim(values) == 1 for values in path.params.values()]
    if len(scalars) == 2 and all(scalars):
        return _Plane(exp, path, count, fig)
    return _Loss(exp, path, count, fig)


def _log_levels(low, high):
    """Contour levels 1, 2, 5 times a power of ten, from below low to above high."""
    powers = 10.0 ** np.arange(np.floor(np.log10(low)), np.ceil(np.log10(high)) + 1)
    levels = (powers[:, None] * [1.0, 2.0, 5.0]).ravel()
    return levels[(levels >= low / 5) & (levels <= high * 5)]


def _frame_steps(count, limit):
    """At most ``limit`` evenly spaced steps of ``0 .. count - 1``, both ends in."""
    if count <= limit:
        return list(range(count))
    return np.unique(np.round(np.linspace(0, count - 1, limit)).astype(int)).tolist()


def _span(values, pad=0.25):
    """A padded view centred on ``values``, at least 1 and |their middle| wide."""
    lo, hi = float(np.min(values)), float(np.max(values))
    middle = 0.5 * (lo + hi)
    half = (0.5 + pad) * max(hi - lo, 1.0, abs(middle))
    return middle - half, middle + half


def _runs_away(values):
    """Whether a path's extent outgrows that of its first step a hundredfold."""
    if len(values) < 2:
        return False
    first = np.subtract(*_span(values[:2])[::-1])
    whole = np.subtract(*_span(values)[::-1])
    return bool(whole > _FOLLOW * first)


# The zoom.


def _to_view(values, log):
    """Axis values as the zoom measures them: decades on a log axis."""
    values = np.asarray(values, dtype=float)
    return np.log10(values) if log else values


def _zoom_start(exp, center, factor, frames, resolution):
    """Checks a zoom's arguments; returns its keys, log flags, ranges and centre."""
    if len(exp.sweep) < 2:
        raise ValueError(
            f"a zoom needs two sweep axes; '{exp.name}' sweeps "
            f"{[axis.key for axis in exp.sweep] or 'nothing'}"
        )
    if not 0 < factor < 1:
        raise ValueError(f"factor must lie in (0, 1), not {factor}")
    if frames < 1 or resolution < 2:
        raise ValueError(
            "frames must be at least 1 and resolution at least 2, "
            f"not {frames} and {resolution}"
        )
    keys = [axis.key for axis in exp.sweep[:2]]
    logs = [axis.scale == "log" for axis in exp.sweep[:2]]
    full = np.array(
        [
            [values.min(), values.max()]
            for values in (
                _to_view(axis.values, log)
                for axis, log in zip(exp.sweep[:2], logs, strict=True)
            )
        ]
    )
    if not (full[:, 1] > full[:, 0]).all():
        raise ValueError(f"a zoom needs more than one value on each of {keys}")
    if center is None:
        return keys, logs, full, full.mean(axis=1)
    if sorted(center) != sorted(keys):
        raise ValueError(
            f"center must give exactly the zoomed keys {keys}, not {sorted(center)}"
        )
    for key, log in zip(keys, logs, strict=True):
        if log and not center[key] > 0:
            raise ValueError(f"center {key}={center[key]} must be positive (log axis)")
    focus = [_to_view(center[key], log) for key, log in zip(keys, logs, strict=True)]
    return keys, logs, full, np.array(focus)


def _windowed(exp: Experiment, window, logs, resolution):
    """The experiment with its first two sweep axes replaced by the window."""
    config = copy.deepcopy(exp.config)
    sweep = {}
    for index, axis in enumerate(exp.sweep):
        if index < 2:
            kind = "logspace" if logs[index] else "linspace"
            bounds = [float(bound) for bound in window[index]]
            sweep[axis.key] = {kind: bounds, "num": int(resolution)}
        else:
            sweep[axis.key] = [axis.values[0].item()]
    config["sweep"] = sweep
    return load_config(config)


def _boundary_point(ds, keys, logs, focus, width):
    """The converged/diverged boundary point nearest ``focus``, in view units."""
    regime = ds["regime"].isel({d: 0 for d in ds["regime"].dims if d not in keys})
    regime = np.asarray(regime.transpose(*keys))
    x, y = (_to_view(ds[key].values, log) for key, log in zip(keys, logs, strict=True))
    converged = regime == Regime.CONVERGED
    for other in (regime == Regime.DIVERGED, ~converged & (regime != Regime.NOT_RUN)):
        across = (converged[:-1] & other[1:]) | (other[:-1] & converged[1:])
        i, j = np.nonzero(across)
        points = [np.stack([0.5 * (x[i] + x[i + 1]), y[j]], axis=1)]
        along = (converged[:, :-1] & other[:, 1:]) | (other[:, :-1] & converged[:, 1:])
        i, j = np.nonzero(along)
        points.append(np.stack([x[i], 0.5 * (y[j] + y[j + 1])], axis=1))
        points = np.concatenate(points)
        if len(points):
            distance = np.linalg.norm((points - focus) / width, axis=1)
            return points[int(np.argmin(distance))]
    return focus


def _width_text(ds, key):
    """How wide the window is along ``key``: in decades on a log axis."""
    values = np.asarray(ds[key].values, dtype=float)
    if ds[key].attrs.get("scale") == "log":
        return f"{np.log10(values.max() / values.min()):.3g} decades"
    return f"{values.max() - values.min():.3g}"
