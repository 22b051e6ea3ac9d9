"""The explorer: the stability map beside one run's path, moved by sliders and clicks.

``dynamics explore CONFIG`` opens it in a window. The map is on the left. On
the right is the path of one run: down the cost curve, with the tangent at the
start, for one scalar parameter; over filled contours of the loss for two; and,
for every objective, its loss against the step. Sliders set the start (one per
parameter), the learning rate and the number of steps, and the run is done
again as they move. A click on a map cell shows that cell's run and moves the
sliders to its values.

It is built on a :class:`~matplotlib.figure.Figure` of its own, so it can be
driven without a screen, as the tests do:

>>> explorer = Explorer({"objective": {"expr": "(w - 2)**2 + 1"},
...                      "start": {"w": 0.0},
...                      "optimizer": {"name": "sgd", "learning_rate": 0.1},
...                      "steps": 20,
...                      "sweep": {"optimizer.learning_rate":
...                                {"linspace": [0.1, 1.2], "num": 12}}})
>>> explorer.sliders["learning_rate"].set_val(0.25)
>>> explorer.path.params["w"][:3].tolist()
[0.0, 1.0, 1.5]
"""

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
import xarray as xr
from matplotlib.backend_bases import MouseButton
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.widgets import Slider

from dynamics import animate, api, engine, figures, objectives, schema, zoom
from dynamics.config import Experiment, load_config
from dynamics.errors import ConfigError

#: Most points along each map axis computed when no results are given.
RESOLUTION = 96
#: Most parameter-steps (runs × steps × parameters) of a map computed when no
#: results are given: a network's map is coarser, so the window opens in seconds.
WORK = 2**27
#: Backends that draw no window.
NON_INTERACTIVE = ("agg", "cairo", "pdf", "pgf", "ps", "svg", "template")

PATH, START, END, DIVERGED = "#0072B2", "#009E73", "#D55E00", "#D55E00"
# A path is followed this many widths of the start region beyond it; further
# out it leaves the view (a diverging run would otherwise squash the rest).
_REACH = 2.0
_GRID = 120
_WIDTH, _PANELS_HEIGHT, _SLIDER_ROW = 14.0, 6.2, 0.42  # inches


class Explorer:
    """The map, one run's path and its loss, with sliders for that run.

    Args:
      exp: an :class:`~dynamics.config.Experiment`, or anything
        :func:`~dynamics.config.load_config` reads.
      ds: the results of ``exp``'s sweep (:func:`dynamics.run`,
        :func:`dynamics.load`). Without them the map is computed, no folder
        written, with each map axis cut to ``resolution`` points (fewer for
        large models, see :data:`WORK`) and the sweep axes beyond the first
        two at their first value, which is all the map shows of them.
      resolution: most points along each computed map axis.
      figure: the figure to draw in (a pyplot figure, for a window); by
        default a new :class:`~matplotlib.figure.Figure`. Its size is set.

    Attributes:
      figure: the figure.
      sliders: :class:`~matplotlib.widgets.Slider` by name: ``start.NAME`` for
        each scalar start of a one- or two-parameter objective,
        ``learning_rate`` (``learning_rate.I`` for each group of a list of
        rates) and ``steps``. A log-scale learning rate slider moves in
        log10 of the rate.
      map_ax, path_ax, loss_ax: the axes; ``path_ax`` is ``None`` for
        objectives of more than two parameters.
      ds: the map's results; ``x`` and ``y`` its horizontal and vertical keys.
      path: the shown run, an :class:`~dynamics.engine.Path`.
      diverged_at: the first step with a non-finite loss or parameter of that
        run, or ``None``.
      selected: the swept values of the last map cell clicked, or ``None``.
    """

    def __init__(
        self,
        exp: Any,
        ds: xr.Dataset | None = None,
        *,
        resolution: int = RESOLUTION,
        figure: Figure | None = None,
    ):
        self.exp = load_config(exp)
        if ds is None:
            ds = api.run(coarse(self.exp, resolution))
        dims = list(ds["regime"].dims)
        keys = [axis.key for axis in self.exp.sweep]
        if dims != keys:
            raise ValueError(
                f"the results sweep {dims or 'nothing'} but the experiment "
                f"'{self.exp.name}' sweeps {keys or 'nothing'}: give the results "
                "of this experiment"
            )
        self.ds = ds
        self.x = dims[0] if dims else None
        self.y = dims[1] if len(dims) > 1 else None
        # Sweep axes beyond the map's two are shown at their first value, and
        # so are the runs of its cells.
        self.fixed = {dim: _item(ds[dim][0]) for dim in dims[2:]}
        self.selected = None
        self.path = None
        self.diverged_at = None
        self._overlay = []

        kind = _kind(self.exp)
        self._targets = self._slider_targets(kind)
        rows = len(self._targets) + 1
        height = _PANELS_HEIGHT + rows * _SLIDER_ROW + 0.3
        self.figure = figure if figure is not None else Figure()
        self.figure.set_size_inches(_WIDTH, height)
        self._layout(kind, rows, height)
        self._draw_map()
        self.sliders = self._make_sliders(rows, height)
        self.figure.canvas.mpl_connect("button_press_event", self._on_press)
        self.update()

    @property
    def settings(self) -> dict[str, float | int]:
        """The sliders' values in their own units (a log slider's rate, not its
        logarithm), by slider name; ``steps`` is an integer."""
        values = {}
        for name, slider in self.sliders.items():
            if name == "steps":
                values[name] = max(1, int(round(slider.val)))
            elif self._log[name]:
                values[name] = float(10.0**slider.val)
            else:
                values[name] = float(slider.val)
        return values

    def experiment(self) -> Experiment:
        """The shown run as an experiment without a sweep: the config with the
        sliders' values and those of the clicked cell put in (``steps`` apart,
        which :func:`~dynamics.engine.path` takes on its own)."""
        values = dict(self.fixed)
        for name, value in self.settings.items():
            if name != "steps":
                values[self._targets[name]] = value
        config = {k: v for k, v in self.exp.config.items() if k != "sweep"}
        return load_config(schema.substitute(config, values))

    def update(self, _value=None) -> None:
        """Runs the shown run again and redraws its path, its loss and its place
        on the map. The sliders call it as they move."""
        exp = self.experiment()
        self.path = engine.path(exp, self.settings["steps"])
        self.diverged_at = _diverged_at(self.path)
        with np.errstate(all="ignore"):
            if self._panel is not None:
                self._panel.draw(exp, self.path, self.diverged_at, self._ranges())
            heading = None if self._panel else _path_title(exp, self.path, None, "")
            _draw_loss(self.loss_ax, self.path, self.diverged_at, heading)
            self._draw_overlay(exp)
        self.figure.canvas.draw_idle()

    def cell_at(self, x: float, y: float | None = None) -> dict[str, float]:
        """The swept values of the map cell holding the point ``(x, y)`` in the
        map's data coordinates (the nearest cell for a point outside)."""
        cell = {}
        for dim, value in ((self.x, x), (self.y, y)):
            if dim is not None:
                coord = self.ds[dim].sortby(dim)
                edges = figures._edges(coord, dim)
                index = np.searchsorted(edges, value, side="right") - 1
                cell[dim] = _item(coord[int(np.clip(index, 0, coord.size - 1))])
        return {**cell, **{dim: _item(self.ds[dim][0]) for dim in self.fixed}}

    def select(self, cell: Mapping[str, float]) -> None:
        """Shows the run of a map cell, given its swept values: the sliders
        move to the values they set (start, learning rate), and the other swept
        values are kept for the runs that follow."""
        by_target = {target: name for name, target in self._targets.items()}
        for key, value in cell.items():
            name = by_target.get(key)
            if name is None:
                self.fixed[key] = value
                continue
            slider = self.sliders[name]
            position = np.log10(value) if self._log[name] else value
            slider.eventson = False
            slider.set_val(float(position))
            slider.eventson = True
        self.selected = dict(cell)
        self.update()

    # Building the window.

    def _slider_targets(self, kind):
        """The config path each slider but ``steps`` sets, by slider name."""
        targets = {}
        if kind != "many":
            for name in self.exp.param_names:
                targets[f"start.{name}"] = f"start.{name}"
        rate = self.exp.config["optimizer"]["learning_rate"]
        if isinstance(rate, list):
            for index in range(len(rate)):
                targets[f"learning_rate.{index}"] = f"optimizer.learning_rate.{index}"
        else:
            targets["learning_rate"] = "optimizer.learning_rate"
        return targets

    def _layout(self, kind, rows, height):
        fig = self.figure
        bottom = (rows * _SLIDER_ROW + 0.3 + 0.75) / height
        top = 1.0 - 0.85 / height
        self.map_ax = fig.add_axes((0.075, bottom, 0.285, top - bottom))
        right = (0.58, 0.37)
        self.path_ax = self._panel = None
        if kind == "many":
            self.loss_ax = fig.add_axes((right[0], bottom, right[1], top - bottom))
            return
        middle = 0.5 * (top + bottom)
        gap = 0.45 / height
        self.path_ax = fig.add_axes(
            (right[0], middle + gap, right[1], top - middle - gap)
        )
        self.loss_ax = fig.add_axes((right[0], bottom, right[1], middle - gap - bottom))
        if kind == "curve":
            self._panel = _Curve(self.path_ax)
        else:
            cax = fig.add_axes((0.955, middle + gap, 0.01, top - middle - gap))
            self._panel = _Plane(self.path_ax, cax)

    def _draw_map(self):
        ds = self.ds
        index = figures._class_index(
            np.asarray(ds["regime"]), np.asarray(ds["overshoot"])
        )
        da = ds["regime"].copy(data=index).isel({dim: 0 for dim in self.fixed})
        # The config's palette, as in the run's own stability map.
        classes = figures.Style.from_config(self.exp.config).colours.classes()
        colours = [colour for _, colour in classes]
        image = figures.draw_cells(self.map_ax, da, self.x, self.y, colours)
        # The view is the cells': fixed now, so that the marker of a run off
        # the map does not widen it, and so that clicks map to cells before
        # the first draw.
        self.map_ax.set_xlim(self.map_ax.get_xlim())
        self.map_ax.set_ylim(self.map_ax.get_ylim())
        if self.x is None:
            self.map_ax.set_xticks([])
            self.map_ax.set_xlabel("a single run (no sweep)")
        if self.y is None:
            self.map_ax.set_yticks([])
        counts = np.bincount(image.ravel(), minlength=len(classes))
        handles = figures.class_handles(classes, counts)
        self.map_ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            frameon=False,
            title="regime (cells)",
            fontsize=8,
            title_fontsize=8,
        )
        figures.title(self.map_ax, ds, ds.attrs.get("name", self.exp.name), self.fixed)
        self._cell_text = self.map_ax.text(
            1.04,
            0.0,
            "click a cell\nto see its run",
            transform=self.map_ax.transAxes,
            fontsize=8,
            va="bottom",
            color="0.25",
        )

    def _make_sliders(self, rows, height):
        sliders, self._log = {}, {}
        config = self.exp.config
        for row, name in enumerate([*self._targets, "steps"]):
            rect = (
                0.2,
                (0.3 + (rows - 1 - row) * _SLIDER_ROW) / height,
                0.5,
                0.22 / height,
            )
            ax = self.figure.add_axes(rect)
            if name == "steps":
                top = max(2 * config["steps"], 10)
                slider = Slider(
                    ax, "steps", 1, top, valinit=config["steps"], valstep=1, valfmt="%d"
                )
                self._log[name] = False
            else:
                low, high, value, log = self._slider_range(name)
                self._log[name] = log
                label = name.replace("_", " ").replace(".", " ")
                if name.startswith("learning_rate."):
                    label = f"learning rate, group {name.split('.')[1]}"
                slider = Slider(
                    ax,
                    f"{label} (log)" if log else label,
                    low,
                    high,
                    valinit=value,
                    valfmt=(lambda v: f"{10.0**v:.4g}")
                    if log
                    else (lambda v: f"{v:.4g}"),
                )
            slider.on_changed(self.update)
            sliders[name] = slider
        return sliders

    def _slider_range(self, name):
        """``(low, high, value, log)``: from the swept axis of the slider's key
        if any (its log10 on a log axis), else around the config's value."""
        key = self._targets[name]
        value = float(_lookup(self.exp.config, key) or 0.0)
        if key in self.ds.dims:
            values = np.asarray(self.ds[key], dtype=float)
            low, high = float(values.min()), float(values.max())
            if figures._is_log(self.ds, key):
                value = value if value > 0 else low
                low, high = min(low, value), max(high, value)
                return np.log10(low), np.log10(high), np.log10(value), True
            return min(low, value), max(high, value), value, False
        if key.startswith("start."):
            half = 2.0 * max(1.0, abs(value))
            return value - half, value + half, value, False
        return 0.0, 2.0 * value if value > 0 else 1.0, value, False

    def _ranges(self):
        """The start sliders' ranges in their own units: the region a view shows."""
        ranges = {}
        for name, target in self._targets.items():
            if target.startswith("start."):
                slider = self.sliders[name]
                ranges[target.split(".", 1)[1]] = (slider.valmin, slider.valmax)
        return ranges

    # Reacting.

    def _on_press(self, event):
        if event.inaxes is not self.map_ax or event.button != MouseButton.LEFT:
            return
        toolbar = getattr(self.figure.canvas, "toolbar", None)
        if toolbar is not None and toolbar.mode:
            return  # zooming or panning the map, not choosing a run
        if event.xdata is None:
            return
        self.select(self.cell_at(event.xdata, event.ydata))

    def _place(self, exp, dim):
        """Where the shown run lies along a map axis; None off the axis (a
        value left unset, or not positive on a log axis)."""
        if dim is None:
            return 0.5
        value = _lookup(exp.config, dim)
        if value is None or not np.isfinite(value):
            return None
        if figures._is_log(self.ds, dim) and value <= 0:
            return None
        return float(value)

    def _draw_overlay(self, exp):
        """The shown run's place on the map, and the clicked cell's outline."""
        for artist in self._overlay:
            artist.remove()
        self._overlay = []
        ax = self.map_ax
        place = [self._place(exp, dim) for dim in (self.x, self.y)]
        if self.x is not None and None not in place:
            self._overlay += ax.plot(
                *([value] for value in place),
                "P",
                color="white",
                mec="black",
                ms=11,
                zorder=5,
            )
        shown = [dim for dim in (self.x, self.y) if dim is not None]
        if self.selected is None or not shown or not set(shown) <= set(self.selected):
            return
        corners = []
        for dim in (self.x, self.y):
            if dim is None:
                corners.append((0.0, 1.0))
                continue
            coord = self.ds[dim].sortby(dim)
            edges = figures._edges(coord, dim)
            index = int(np.argmin(np.abs(np.asarray(coord) - self.selected[dim])))
            corners.append((edges[index], edges[index + 1]))
        (x0, x1), (y0, y1) = corners
        self._overlay.append(
            ax.add_patch(
                Rectangle(
                    (x0, y0), x1 - x0, y1 - y0, fill=False, ec="black", lw=1.5, zorder=4
                )
            )
        )
        cell = self.ds[["regime", "overshoot"]].sel(self.selected, method="nearest")
        index = figures._class_index(
            np.asarray(cell["regime"]), np.asarray(cell["overshoot"])
        )
        lines = [f"{key} = {value:.4g}" for key, value in self.selected.items()]
        self._cell_text.set_text(
            "clicked cell\n" + "\n".join(lines) + f"\n{figures.CLASSES[int(index)][0]}"
        )


class _Curve:
    """One scalar parameter: the cost curve, the tangent at the start, the path."""

    def __init__(self, ax):
        self.ax = ax
        self.functions = {}

    def draw(self, exp, path, diverged_at, ranges):
        key = json.dumps([exp.config["objective"], exp.dtype], sort_keys=True)
        if key not in self.functions:
            self.functions[key] = figures._one_dimensional(exp)
        name, loss, slope_at = self.functions[key]
        ws = np.asarray(path.params[name], dtype=float)
        js = np.asarray(path.loss, dtype=float)
        shown = _until(len(js), diverged_at)
        w0 = float(exp.config["start"][name])
        region = ranges.get(name, (w0, w0))
        lo0, hi0 = figures._curve_range(exp, region)
        reach = _REACH * (hi0 - lo0)
        lo, hi = figures._curve_range(
            exp, [*region, *np.clip(ws[shown], lo0 - reach, hi0 + reach)]
        )
        grid = np.linspace(lo, hi, 400)
        curve = loss(grid)

        ax = self.ax
        ax.clear()
        ax.plot(grid, curve, color="0.55", lw=1.5, zorder=1, label=f"J({name})")
        j0, slope = float(loss(w0)), slope_at(w0)
        if np.isfinite(j0) and np.isfinite(slope):
            span = w0 + 0.2 * (hi - lo) * np.array([-1.0, 1.0])
            ax.plot(
                span,
                j0 + slope * (span - w0),
                color=START,
                lw=1.5,
                ls="--",
                zorder=2,
                label=f"tangent at the start, slope {slope:.4g}",
            )
        far = 100.0 * (hi - lo)
        inside = shown & (ws >= lo) & (ws <= hi)
        low, high = _finite_span(np.concatenate([curve, js[inside]]))
        ax.plot(
            np.clip(ws[shown], lo - far, hi + far),
            np.clip(
                js[shown], low - 100 * (high - low + 1), high + 100 * (high - low + 1)
            ),
            "-o",
            color=PATH,
            ms=3,
            lw=0.8,
            zorder=3,
            gid="iterates",
            label="iterates",
        )
        _ends(ax, ws[shown], js[shown])
        ax.set_xlim(lo, hi)
        figures._clip_to_curve(ax, np.concatenate([curve, js[inside]]))
        ax.set_xlabel(name)
        ax.set_ylabel(f"J({name})")
        ax.legend(loc="upper center", frameon=False, fontsize=8, ncol=2)
        ax.set_title(
            _path_title(exp, path, diverged_at, f"{name} = {w0:.4g}"),
            loc="left",
            fontsize=9,
        )


class _Plane:
    """Two scalar parameters: filled contours of the loss and the path over them."""

    def __init__(self, ax, cax):
        self.ax, self.cax = ax, cax
        self.surfaces = {}
        self.background = None
        self.moving = []

    def draw(self, exp, path, diverged_at, ranges):
        names = [name for name in exp.config["start"] if name in path.params]
        xy = np.stack([path.params[name] for name in names], axis=1).astype(float)
        shown = _until(len(xy), diverged_at)
        region = np.array([ranges[name] for name in names])  # rows x, y
        box = np.array([animate._span(bounds, 0.0) for bounds in region])
        reach = _REACH * (box[:, 1] - box[:, 0])
        points = np.clip(xy[shown], box[:, 0] - reach, box[:, 1] + reach)
        view = tuple(
            float(v)
            for k in range(2)
            for v in animate._span(np.concatenate([region[k], points[:, k]]), 0.15)
        )
        key = (json.dumps([exp.config["objective"], exp.dtype], sort_keys=True), view)
        if key != self.background:
            self._contours(exp, names, view)
            self.background = key
            self.moving = []
        for artist in self.moving:
            artist.remove()

        ax = self.ax
        far = 100.0 * max(view[1] - view[0], view[3] - view[2])
        middle = np.array([0.5 * (view[0] + view[1]), 0.5 * (view[2] + view[3])])
        drawn = np.clip(xy[shown], middle - far, middle + far)
        self.moving = ax.plot(
            drawn[:, 0],
            drawn[:, 1],
            "-o",
            color="#E69F00",
            ms=2.5,
            lw=1.2,
            zorder=3,
            gid="iterates",
        )
        self.moving += _ends(ax, drawn[:, 0], drawn[:, 1])
        start = ", ".join(f"{float(exp.config['start'][n]):.3g}" for n in names)
        ax.set_title(
            _path_title(exp, path, diverged_at, f"({start})"), loc="left", fontsize=9
        )

    def _contours(self, exp, names, view):
        ax, cax = self.ax, self.cax
        ax.clear()
        cax.clear()
        key = json.dumps([exp.config["objective"], exp.dtype], sort_keys=True)
        x64 = exp.dtype == "float64"
        if key not in self.surfaces:
            with jax.enable_x64(x64):
                loss = objectives.build(exp.config, exp.dtype).loss
                self.surfaces[key] = jax.jit(
                    jax.vmap(lambda x, y: loss(dict(zip(names, (x, y), strict=True))))
                )
        gx, gy = np.meshgrid(
            np.linspace(view[0], view[1], _GRID), np.linspace(view[2], view[3], _GRID)
        )
        with jax.enable_x64(x64):
            z = self.surfaces[key](
                gx.ravel().astype(exp.dtype), gy.ravel().astype(exp.dtype)
            )
        z = np.asarray(z, dtype=float).reshape(gx.shape)
        finite = z[np.isfinite(z)]
        if finite.size and finite.max() > finite.min():
            top, positive = float(finite.max()), finite[finite > 0]
            # Log-spaced levels when the loss spans three decades or more, as
            # around Rosenbrock's valley; linear ones would show only its rim.
            if finite.min() >= 0 and positive.size and top > 1e3 * positive.min():
                levels = animate._log_levels(
                    max(float(positive.min()), top * 1e-6), top
                )
                fill = ax.contourf(
                    gx,
                    gy,
                    np.clip(z, levels[0], levels[-1]),
                    levels,
                    norm=LogNorm(),
                    cmap="bone",
                )
            else:
                fill = ax.contourf(
                    gx, gy, np.clip(z, finite.min(), top), 20, cmap="bone"
                )
            bar = ax.figure.colorbar(fill, cax=cax)
            if isinstance(fill.norm, LogNorm):
                # Labels at the powers of ten only: the colourbar would thin
                # the 1-2-5 levels unevenly, or label none of them.
                powers = np.log10(fill.levels)
                bar.set_ticks(fill.levels[np.isclose(powers, np.round(powers))])
            bar.ax.tick_params(labelsize=7)
            cax.set_title("J", fontsize=8)
        else:
            cax.set_axis_off()
        ax.set_xlim(view[0], view[1])
        ax.set_ylim(view[2], view[3])
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])


def coarse(exp: Any, resolution: int = RESOLUTION) -> Experiment:
    """``exp`` with a map quick to compute: each of its first two sweep axes cut
    to at most ``resolution`` points (fewer when runs × steps × parameters
    would pass :data:`WORK`), and the axes beyond them at their first value.

    A linspace or logspace axis keeps its range; a list keeps evenly spaced
    values, its ends included.

    >>> exp = coarse({"objective": {"expr": "w**2"}, "start": {"w": 1.0},
    ...               "optimizer": {"name": "sgd", "learning_rate": 0.1},
    ...               "sweep": {"optimizer.learning_rate":
    ...                         {"logspace": [-3, 0], "num": 1000},
    ...                         "start.w": [-1.0, 1.0],
    ...                         "optimizer.momentum": [0.0, 0.5, 0.9]}}, 96)
    >>> exp.shape
    (96, 2, 1)
    """
    exp = load_config(exp)
    if not exp.sweep:
        return exp
    shown = min(len(exp.sweep), 2)
    per_run = exp.steps * len(engine.parameter_names(exp))
    cap = int((WORK / per_run) ** (1.0 / shown))
    cap = max(8, min(int(resolution), cap))
    sweep = {}
    for index, (key, spec) in enumerate(exp.config["sweep"].items()):
        values = exp.sweep[index].values
        if index >= 2:
            sweep[key] = [values[0].item()]
        elif len(values) <= cap:
            sweep[key] = spec
        elif isinstance(spec, Mapping):
            sweep[key] = {**spec, "num": cap}
        else:
            picked = np.unique(
                np.round(np.linspace(0, len(values) - 1, cap)).astype(int)
            )
            sweep[key] = [values[i].item() for i in picked]
    return load_config({**exp.config, "sweep": sweep})


def show(
    source: "str | os.PathLike | Experiment",
    overrides: Sequence[str] = (),
    *,
    save: "str | os.PathLike | None" = None,
    resolution: int = RESOLUTION,
) -> None:
    """Opens the explorer in a window, or writes its first view to ``save``.

    Args:
      source: a YAML config (the map is computed at a modest resolution, see
        :class:`Explorer`), a run folder written by ``dynamics run`` (its
        results are the map), or an :class:`~dynamics.config.Experiment`.
      overrides: ``"key=value"`` strings for a config.
      save: a ``.png``, ``.svg`` or ``.pdf`` path: the window's first view is
        written there instead of shown, which needs no display.
      resolution: as for :class:`Explorer`.

    Raises:
      ConfigError: no display (matplotlib's backend draws no window) and no
        ``save``; overrides with a run folder; a source that is neither a
        config nor a run folder; ``save`` of another format.
    """
    if save is None:
        import matplotlib
        import matplotlib.pyplot as plt

        backend = matplotlib.get_backend()
        if _draws_no_window(backend):
            raise ConfigError(
                f"dynamics explore opens a window, but there is no display: "
                f"matplotlib's backend is '{backend}', which draws none. Run it "
                "where there is a screen, or set MPLBACKEND to an interactive "
                "backend such as TkAgg or QtAgg (MPLBACKEND=TkAgg dynamics "
                "explore ...), or write the first view to a file with --save "
                "FILE.png"
            )
    else:
        fmt = os.path.splitext(os.fspath(save))[1].lstrip(".").lower()
        if fmt not in api.FORMATS:
            raise ConfigError(
                f"--save {os.fspath(save)}: the file must end in "
                f"{', '.join('.' + f for f in api.FORMATS)}"
            )
    exp, ds = _open(source, overrides)
    if save is not None:
        explorer = Explorer(exp, ds, resolution=resolution)
        explorer.figure.savefig(save, dpi=exp.config["figures"]["dpi"])
        return
    # Matplotlib's widgets live only while something holds them: the explorer,
    # held here until the window is closed.
    try:
        window = plt.figure()
    except Exception as err:  # an interactive backend whose toolkit finds no screen
        raise ConfigError(
            f"dynamics explore could not open a window ({type(err).__name__}: "
            f"{err}); run it where there is a screen, or write the first view "
            "to a file with --save FILE.png"
        ) from None
    explorer = Explorer(exp, ds, resolution=resolution, figure=window)
    manager = explorer.figure.canvas.manager
    if manager is not None:
        manager.set_window_title(f"dynamics explore: {exp.name}")
    plt.show()
    plt.close(explorer.figure)


def _open(source, overrides):
    """The experiment, and its results when ``source`` is a run folder."""
    if isinstance(source, str | os.PathLike) and os.path.isdir(source):
        if overrides:
            raise ConfigError(
                f"'{os.fspath(source)}' is a run folder, whose results are fixed; "
                "overrides apply to a config file: give its config.yaml with them"
            )
        return zoom.read_source(source), api.load(os.fspath(source))
    return load_config(source, overrides), None


def _draws_no_window(backend):
    backend = backend.lower()
    return backend in NON_INTERACTIVE or backend.endswith("inline")


def _kind(exp):
    """``curve`` for one scalar parameter, ``plane`` for two, else ``many``."""
    if objectives.scalar_parameter(exp.config) is not None:
        return "curve"
    with jax.enable_x64(exp.dtype == "float64"):
        shapes = jax.eval_shape(lambda: objectives.build(exp.config, exp.dtype).params)
    start = exp.config["start"]
    if len(shapes) == 2 and all(
        name in start and shape.shape == () for name, shape in shapes.items()
    ):
        return "plane"
    return "many"


def _diverged_at(path):
    finite = np.isfinite(path.loss)
    for values in path.params.values():
        finite &= np.isfinite(values.reshape(len(path.loss), -1)).all(axis=1)
    bad = np.flatnonzero(~finite)
    return int(bad[0]) if bad.size else None


def _until(count, diverged_at):
    """Which of ``count`` iterates to draw: those before the divergence."""
    shown = np.zeros(count, dtype=bool)
    shown[: count if diverged_at is None else diverged_at] = True
    return shown


def _ends(ax, xs, ys):
    """Marks the first and the last drawn iterate; returns the markers."""
    if not len(xs):
        return []
    artists = ax.plot([xs[0]], [ys[0]], "o", color=START, mec="white", ms=8, zorder=4)
    artists += ax.plot([xs[-1]], [ys[-1]], "s", color=END, mec="white", ms=7, zorder=4)
    return artists


def _path_title(exp, path, diverged_at, start):
    optimizer = exp.config["optimizer"]
    steps = len(path.loss) - 1
    first = (
        f"{optimizer['name']}, learning rate {figures._rate_text(optimizer)}, "
        f"{steps} steps" + (f" from {start}" if start else "")
    )
    if diverged_at is not None:
        return f"{first}\ndiverged at step {diverged_at}"
    return f"{first}\nloss at the end {float(path.loss[-1]):.4g}"


def _draw_loss(ax, path, diverged_at, heading=None):
    ax.clear()
    losses = np.asarray(path.loss, dtype=float)
    shown = _until(len(losses), diverged_at)
    steps = np.arange(len(losses))
    ax.plot(steps[shown], losses[shown], color=PATH, lw=1.2, gid="loss")
    if shown.any():
        low, high = float(losses[shown].min()), float(losses[shown].max())
        if low > 0 and high > 100 * low:
            ax.set_yscale("log")
    title = "loss by step"
    if diverged_at is not None:
        ax.axvline(diverged_at, color=DIVERGED, ls=":", lw=1.5)
        title += f": diverged at step {diverged_at}"
    ax.set_xlim(0, max(len(losses) - 1, 1))
    ax.set_xlabel("step")
    ax.set_ylabel("J")
    if heading is not None:
        title = heading.split("\n")[0] + "\n" + title
    ax.set_title(title, loc="left", fontsize=9)


def _finite_span(values):
    finite = np.asarray(values)[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


def _lookup(config, key):
    """The value at a dotted config path (list items by index)."""
    target = config
    for part in key.split("."):
        target = target[int(part)] if isinstance(target, list) else target[part]
    return target


def _item(value):
    return np.asarray(value).item()
