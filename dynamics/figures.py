"""Figures: the stability map, the cost curve with its tangent, the descent path.

Each function returns a :class:`matplotlib.figure.Figure` built without pyplot,
so it works the same in a script, a notebook or a headless server;
:func:`save` writes it as PNG, SVG or PDF.

Every figure takes its size, font size and colours from a :class:`Style`: by
default the one in the ``figures`` section of the config that made the
results, so a figure drawn in a notebook matches the file the run saved.

>>> style = Style(size="single", palette="tol_bright")
>>> style.width, style.points
(3.5, 8.0)
"""

import contextlib
import dataclasses
import datetime
import os
import secrets
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import matplotlib
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dynamics import engine, objectives
from dynamics.classify import Regime
from dynamics.config import Experiment

#: Figure widths in inches: one journal column, and the full text width.
WIDTHS = {"single": 3.5, "double": 7.2}
#: Below this width (inches) legends go under the plot and panels are stacked.
NARROW = 5.0


class Palette(NamedTuple):
    """The colours of one colour-blind-safe palette, by what they show.

    ``overshoot`` is a lighter shade of ``converged``; ``extra`` is a third
    line colour beside ``converged`` (the main line) and ``diverged`` (the
    line drawn against it); ``qualitative`` colours basins, in order.
    """

    converged: str
    overshoot: str
    oscillating: str
    diverged: str
    stalled: str
    not_run: str
    extra: str
    qualitative: tuple[str, ...]

    @property
    def line(self) -> str:
        return self.converged

    @property
    def accent(self) -> str:
        return self.diverged

    def classes(self) -> tuple[tuple[str, str], ...]:
        """The stability map's classes, in drawing order: (label, colour)."""
        return (
            ("converged", self.converged),
            ("converged, overshoot", self.overshoot),
            ("oscillating", self.oscillating),
            ("diverged", self.diverged),
            ("stalled", self.stalled),
            ("not run", self.not_run),
        )


#: The palettes by name. Every pair of colours in each stays apart under
#: simulated protanopia and deuteranopia (tests/test_publication.py).
PALETTES = {
    # Okabe and Ito (2008), "Color Universal Design".
    "okabe_ito": Palette(
        "#0072B2",
        "#56B4E9",
        "#E69F00",
        "#D55E00",
        "#CC79A7",
        "#E8E8E8",
        "#009E73",
        ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442"),
    ),
    # Paul Tol's "bright" qualitative scheme (personal.sron.nl/~pault).
    "tol_bright": Palette(
        "#4477AA",
        "#66CCEE",
        "#CCBB44",
        "#EE6677",
        "#AA3377",
        "#E8E8E8",
        "#228833",
        ("#4477AA", "#CCBB44", "#228833", "#AA3377", "#66CCEE", "#EE6677"),
    ),
    # Paul Tol's "muted" scheme: softer, for print.
    "tol_muted": Palette(
        "#332288",
        "#88CCEE",
        "#DDCC77",
        "#CC6677",
        "#AA4499",
        "#E8E8E8",
        "#117733",
        (
            "#332288",
            "#DDCC77",
            "#117733",
            "#AA4499",
            "#88CCEE",
            "#CC6677",
            "#44AA99",
            "#999933",
            "#882255",
        ),
    ),
}
#: The map's classes under the default palette, in drawing order: (label,
#: colour).
CLASSES = PALETTES["okabe_ito"].classes()
#: Most cells drawn along an axis of a map (see :func:`draw_cells`).
MAX_DRAWN = 2048


@dataclasses.dataclass(frozen=True)
class Style:
    """How a figure looks: its size, its font size and its colours.

    Args:
      size: ``"single"`` (one journal column, 3.5 in wide), ``"double"`` (the
        full text width, 7.2 in) or ``(width, height)`` in inches. With a
        named size each figure keeps its own proportions.
      palette: a name in :data:`PALETTES`.
      font_size: points; ``None`` for 10 at widths of 5 in or more, else 8.

    >>> Style(size=(4, 3)).figsize(0.7)
    (4.0, 3.0)
    """

    size: str | tuple[float, float] = "double"
    palette: str = "okabe_ito"
    font_size: float | None = None

    def __post_init__(self):
        size = self.size
        if isinstance(size, str):
            if size not in WIDTHS:
                raise ValueError(
                    f"size '{size}' is not one of: {', '.join(WIDTHS)}, "
                    "or (width, height) in inches"
                )
        else:
            size = tuple(float(side) for side in size)
            if len(size) != 2 or not all(0 < side < 100 for side in size):
                raise ValueError(
                    f"size {self.size!r} must be (width, height) in inches"
                )
            object.__setattr__(self, "size", size)
        if self.palette not in PALETTES:
            raise ValueError(
                f"palette '{self.palette}' is not one of: {', '.join(PALETTES)}"
            )
        if self.font_size is not None and not 1 <= self.font_size <= 100:
            raise ValueError(f"font_size {self.font_size} must be in points")

    @classmethod
    def from_config(cls, config: Mapping | None) -> "Style":
        """The style of a config's ``figures`` section (defaults where absent)."""
        section = (config or {}).get("figures") or {}
        keys = ("size", "palette", "font_size")
        return cls(**{key: section[key] for key in keys if key in section})

    @classmethod
    def of(cls, source=None, style: "Style | None" = None) -> "Style":
        """``style`` if given, else the style of ``source``'s config.

        ``source`` is a results Dataset (its stored config), an
        :class:`Experiment`, a config mapping, or anything else for the
        defaults.
        """
        if style is not None:
            return style
        if isinstance(source, Experiment):
            return cls.from_config(source.config)
        attrs = getattr(source, "attrs", None)
        if isinstance(attrs, Mapping):  # a Dataset, which is a Mapping too
            import yaml

            try:
                config = yaml.safe_load(attrs.get("config") or "")
                return cls.from_config(config if isinstance(config, dict) else None)
            except (yaml.YAMLError, TypeError, ValueError):
                return cls()
        if isinstance(source, Mapping):
            return cls.from_config(source)
        return cls()

    @property
    def width(self) -> float:
        return WIDTHS[self.size] if isinstance(self.size, str) else self.size[0]

    @property
    def narrow(self) -> bool:
        """Too narrow for a legend beside the plot or panels side by side."""
        return self.width < NARROW

    @property
    def points(self) -> float:
        """The font size in points."""
        if self.font_size is not None:
            return float(self.font_size)
        return 8.0 if self.narrow else 10.0

    @property
    def small(self) -> float:
        """The size of secondary text: subtitles, crowded legends."""
        return 0.8 * self.points

    @property
    def colours(self) -> Palette:
        return PALETTES[self.palette]

    def figsize(self, aspect: float, narrow_aspect: float | None = None):
        """``(width, height)`` in inches for a figure of height/width ``aspect``
        (``narrow_aspect`` when narrow), unless the size gives both."""
        if not isinstance(self.size, str):
            return self.size
        if self.narrow and narrow_aspect is not None:
            aspect = narrow_aspect
        return (self.width, round(self.width * aspect, 3))

    def figure(self, aspect: float, narrow_aspect: float | None = None) -> Figure:
        """An empty figure of this style's size, laid out by matplotlib."""
        return Figure(figsize=self.figsize(aspect, narrow_aspect), layout="constrained")

    def context(self):
        """Sets the font size for the text drawn inside the ``with`` block."""
        return matplotlib.rc_context({"font.size": self.points})


def axis_name(key: str) -> str:
    """A sweep key in words: ``optimizer.learning_rate`` is "learning rate α"."""
    if key in _NAMES:
        return _NAMES[key]
    section, _, rest = key.partition(".")
    if section == "start" and rest:
        return f"start {rest}"
    if key.startswith("optimizer.learning_rate."):
        return f"learning rate α of group {key.rsplit('.', 1)[1]}"
    if key.startswith("optimizer.schedule.") and key.count(".") == 2:
        return "schedule " + key.rsplit(".", 1)[1].replace("_", " ")
    if section in ("optimizer", "objective") and rest and "." not in rest:
        return rest.replace("_", " ")
    return key


def axis_label(key: str, log: bool = False) -> str:
    """The label of a swept axis: its name and scale over the config key."""
    name = axis_name(key) + (" (log scale)" if log else "")
    return f"{name}\n{key}" if name != key else name


_NAMES = {
    "optimizer.learning_rate": "learning rate α",
    "optimizer.momentum": "momentum β",
    "optimizer.b1": "first-moment decay β₁",
    "optimizer.b2": "second-moment decay β₂",
    "optimizer.eps": "epsilon ε",
    "optimizer.weight_decay": "weight decay",
    "objective.curvature": "curvature",
}


def plot_stability_map(
    ds, x: str | None = None, y: str | None = None, *, style: Style | None = None
) -> Figure:
    """The regime of every run over two sweep axes.

    Args:
      ds: a results Dataset, as returned by :func:`dynamics.run`.
      x: the sweep key on the horizontal axis (default: the first).
      y: the sweep key on the vertical axis (default: the second, if any).
        Further sweep axes are shown at their first value, named in the title.
      style: size, font and palette; default from the config stored in ``ds``.

    Values increase rightwards and upwards. Every class is in the legend, even
    when absent. Each cell is one flat colour: nothing is blended.
    """
    style = Style.of(ds, style)
    index = _class_index(np.asarray(ds["regime"]), np.asarray(ds["overshoot"]))
    classes = style.colours.classes()
    return class_map(ds, index, classes, x, y, "regime (cells)", style=style)


def class_map(
    ds,
    index,
    classes,
    x: str | None = None,
    y: str | None = None,
    legend_title: str = "",
    *,
    style: Style | None = None,
    aspect: float = 5.0 / 7.2,
    legend_size: float | None = None,
) -> Figure:
    """A map of one class per run over two sweep axes, each class its colour.

    Args:
      ds: a results Dataset.
      index: per run (shaped like ``ds["regime"]``), the index of its class.
      classes: ``(label, colour)`` pairs; every one is in the legend with its
        count of cells, even when absent.
      x, y, legend_title, style: as in :func:`plot_stability_map`.
      aspect: height over width of the figure at a named size.
      legend_size: the legend's font size in points (default: the style's).

    The legend stands beside the map, or under it when the style is narrow.
    """
    style = Style.of(ds, style)
    regime = ds["regime"]
    dims = list(regime.dims)
    x = x or (dims[0] if dims else None)
    y = y or next((dim for dim in dims if dim != x), None)
    fixed = {dim: 0 for dim in dims if dim not in (x, y)}
    da = regime.copy(data=np.asarray(index)).isel(fixed)

    with style.context():
        fig = style.figure(aspect, narrow_aspect=1.1)
        ax = fig.add_subplot()
        image = draw_cells(ax, da, x, y, [colour for _, colour in classes])
        if x is None:
            ax.set_xticks([])
            ax.set_xlabel("a single run (no sweep)")
        if y is None:
            ax.set_yticks([])

        counts = np.bincount(image.ravel(), minlength=len(classes))
        handles = class_handles(classes, counts)
        legend(fig, ax, handles, style, title=legend_title, fontsize=legend_size)
        title(ax, ds, ds.attrs.get("name", "map"), fixed, style=style)
    return fig


def legend(fig, ax, handles, style, **options):
    """The map's legend: beside the axes, or under the figure when narrow.

    Under the figure it is a figure legend in two columns; :func:`add_legend`
    adds entries to it.
    """
    options = {"frameon": False, **options}
    if style.narrow:
        options["fontsize"] = options.get("fontsize") or style.small
        return fig.legend(
            handles=handles, loc="outside lower center", ncols=2, **options
        )
    return ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), **options
    )


def add_legend(ax, handles, labels, **options):
    """Entries for a second legend: beside the axes under the first one, or,
    when the first is under the figure, appended to it."""
    fig = ax.figure
    if fig.legends:
        first = fig.legends[0]
        kept = (list(first.legend_handles), [t.get_text() for t in first.texts])
        fontsize = first.texts[0].get_fontsize() if first.texts else None
        title_text = first.get_title().get_text()
        first.remove()
        # Wrapped, so that two columns still fit across a narrow figure.
        labels = [textwrap.fill(label, 24) for label in labels]
        return fig.legend(
            handles=kept[0] + list(handles),
            labels=kept[1] + labels,
            loc="outside lower center",
            ncols=2,
            frameon=False,
            fontsize=fontsize,
            title=title_text or None,
            **options,
        )
    current = ax.get_legend()
    if current is not None:
        # A new legend replaces the axes' legend; keep the map's as an artist.
        ax.add_artist(current)
    return ax.legend(
        handles=handles,
        labels=labels,
        loc="lower left",
        bbox_to_anchor=(1.01, 0.0),
        frameon=False,
        **options,
    )


def class_handles(classes, counts) -> list[Patch]:
    """Legend entries of a class map: each class's colour, name and cell count."""
    return [
        Patch(
            facecolor=colour, edgecolor="0.4", linewidth=0.5, label=f"{label} ({n:,})"
        )
        for (label, colour), n in zip(classes, counts, strict=True)
    ]


def draw_cells(ax, da, x, y, colours) -> np.ndarray:
    """Draws class indices over sweep axes ``x`` and ``y``, one flat colour a
    cell (values rising rightwards and upwards), labels the axes, and returns
    the image drawn, rows along ``y``.

    The cells are one raster image, even in a PDF or SVG (at the file's dpi):
    a mesh of a vector quad per cell would be large, slow to open and, in
    most viewers, seamed with hairlines. Axes and text stay vector."""
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


def title(ax, ds, text, fixed=(), *, style: Style | None = None):
    """The run's name (and any sweep axes held fixed) over a line describing it
    (two lines when the style is narrow)."""
    style = Style.of(ds, style)
    if fixed:
        text += "  at " + ", ".join(f"{dim} = {float(ds[dim][0]):.4g}" for dim in fixed)
    subtitle = _subtitle(ds, style).strip()
    lines = subtitle.count("\n") + 1 if subtitle else 0
    # The subtitle's height, by the font's line spacing, and room for the
    # title's descenders above it.
    height = (1.45 * lines - 0.3) * style.small if lines else 0.0
    ax.set_title(text, loc="left", pad=2 + height + 0.5 * style.points)
    ax.annotate(
        subtitle,
        (0.0, 1.0),
        xycoords="axes fraction",
        xytext=(0, 2),
        textcoords="offset points",
        fontsize=style.small,
        va="bottom",
        ha="left",
        color="0.3",
    )


def _subtitle(ds, style=None):
    """The objective, optimizer and step count, when known: one line, or two
    when the style is narrow."""
    style = style or Style()
    try:
        import yaml

        config = yaml.safe_load(ds.attrs["config"])
        swept = {
            dim.split(".", 1)[1]
            for dim in ds["regime"].dims
            if dim.startswith("objective.")
        }
        shown = {k: v for k, v in config["objective"].items() if k not in swept}
        # About as many characters as fit across the figure.
        limit = int(70 * min(1.0, style.width / 7.2 * 10 / style.points * 1.4))
        objective = _short(objectives.describe(shown), max(limit, 24))
        run = f"{config['optimizer']['name']}, {config['steps']} steps, "
        run += str(config["dtype"])
        return f"\n{objective}" + ("\n" if style.narrow else ", ") + run
    except (KeyError, TypeError, ValueError):
        return ""


def plot_cost_tangent(exp: Experiment, *, style: Style | None = None) -> Figure:
    """The cost curve around the start, with the tangent there and its slope.

    ``style`` defaults to the one in ``exp``'s config.
    """
    style = Style.of(exp, style)
    name, loss, slope_at = _one_dimensional(exp)
    w0 = float(exp.config["start"][name])
    lo, hi = _curve_range(exp, [w0])
    w = np.linspace(lo, hi, 400)
    j0, slope = float(loss(w0)), float(slope_at(w0))
    colours = style.colours

    with style.context():
        fig = style.figure(4.4 / 6.4, narrow_aspect=0.95)
        ax = fig.add_subplot()
        ax.plot(
            w,
            loss(w),
            color=colours.line,
            lw=2,
            label=_short(objectives.describe(exp.config["objective"])),
        )
        if np.isfinite(j0) and np.isfinite(slope):
            span = np.array([lo, hi])
            ax.plot(
                span,
                j0 + slope * (span - w0),
                color=colours.accent,
                lw=1.5,
                ls="--",
                label=f"tangent at {name} = {w0:g}: slope J'({w0:g}) = {slope:.4g}",
            )
            ax.plot([w0], [j0], "o", color=colours.accent, ms=7, zorder=3)
            ax.annotate(
                f"slope {slope:.4g}",
                (w0, j0),
                xytext=(-12, -22),
                textcoords="offset points",
                ha="right",
                color=colours.accent,
                fontweight="bold",
            )
        else:
            ax.axvline(
                w0,
                color=colours.accent,
                ls=":",
                label=f"start {name} = {w0:g}: J = {j0:g}, slope {slope:g} "
                "(no tangent)",
            )
        _clip_to_curve(ax, loss(w))
        ax.set_xlabel(name)
        ax.set_ylabel(f"J({name})")
        ax.set_title("cost and tangent")
        _line_legend(fig, ax, style, loc="upper center")
    return fig


def plot_descent_path(
    exp: Experiment, path: engine.Path | None = None, *, style: Style | None = None
) -> Figure:
    """The path of the configured run down the cost curve, and its loss by step.

    The two panels stand side by side, or one above the other when the style is
    narrow. ``style`` defaults to the one in ``exp``'s config.
    """
    style = Style.of(exp, style)
    name, loss, _ = _one_dimensional(exp)
    path = path or engine.path(exp)
    ws, losses = path.params[name], path.loss
    finite = np.isfinite(ws) & np.isfinite(losses)
    lo, hi = _curve_range(exp, ws[finite])
    w = np.linspace(lo, hi, 400)
    rate = _rate_text(exp.config["optimizer"])
    colours = style.colours

    with style.context():
        fig = style.figure(0.5, narrow_aspect=1.45)
        if style.narrow:
            ax, ax_loss = fig.subplots(2, 1, height_ratios=(3, 2))
        else:
            ax, ax_loss = fig.subplots(1, 2, width_ratios=(3, 2))
        ax.plot(w, loss(w), color="0.55", lw=1.5, zorder=1)
        ax.plot(
            ws[finite],
            losses[finite],
            "-o",
            color=colours.line,
            ms=3,
            lw=0.8,
            zorder=2,
            label="iterates",
        )
        ax.plot(
            [ws[0]] if finite[0] else [],
            [losses[0]] if finite[0] else [],
            "o",
            color=colours.extra,
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
                color=colours.accent,
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
                color=colours.accent,
            )
        _clip_to_curve(ax, np.concatenate([loss(w), losses[finite]]))
        ax.set_xlabel(name)
        ax.set_ylabel(f"J({name})")
        ax.set_title(
            f"{exp.config['optimizer']['name']}, learning rate {rate}, "
            f"{len(ws) - 1} steps",
            fontsize=style.small if style.narrow else None,
        )
        ax.legend(
            loc="upper center",
            frameon=False,
            fontsize=style.small if style.narrow else None,
        )

        steps = np.arange(len(losses))
        ax_loss.plot(steps[finite], losses[finite], color=colours.line, lw=1.2)
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
    *,
    metadata: Mapping[str, object] | None = None,
) -> str:
    """Writes ``fig`` as ``folder/stem.fmt`` and returns the path.

    Args:
      fig: the figure.
      folder, stem: where: ``folder/stem.fmt``.
      fmt: ``"png"``, ``"svg"`` or ``"pdf"``.
      dpi: pixels per inch of a PNG, and of the raster parts (a map's cells)
        of a PDF or SVG.
      description: text stored in the file (the run's config, say).
      metadata: further ``name: text`` entries stored in the file: PNG text
        chunks, entries of the PDF document information dictionary, and in an
        SVG its Dublin Core element of that name (``Title``, ``Creator``,
        ``Date``, ``Source``, …) or, for any other name, a ``name: text`` line
        after the description.

    The file is written under a temporary name in ``folder`` and renamed into
    place, so a reader never sees half a figure. PDF fonts are embedded as
    TrueType (Type 42), which journals accept, rather than Type 3.
    """
    if not isinstance(fmt, str) or fmt not in _METADATA_KEYS:
        raise ValueError(
            f"fmt {fmt!r} is not one of: {', '.join(_METADATA_KEYS)} "
            "(for several, use save_all)"
        )
    path = os.path.join(folder, f"{stem}.{fmt}")
    info = _metadata(fmt, description, metadata or {})
    partial = os.path.join(folder, f".{stem}.{secrets.token_hex(4)}.partial.{fmt}")
    handle = open(partial, "xb")
    try:
        with (
            handle,
            matplotlib.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}),
            warnings.catch_warnings(),
        ):
            # Matplotlib warns about names outside the PDF standard's own, and
            # writes them all the same: the standard allows them.
            warnings.filterwarnings("ignore", "Unknown infodict keyword")
            fig.savefig(handle, format=fmt, dpi=dpi, metadata=info)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
        raise
    return path


def save_all(
    fig: Figure,
    folder: str,
    stem: str,
    formats: str | Sequence[str] = "png",
    dpi: int = 150,
    description: str = "",
    *,
    metadata: Mapping[str, object] | None = None,
) -> list[str]:
    """:func:`save` in each of ``formats`` (one, or a list as the config's
    ``figures.format`` allows); returns the paths."""
    formats = [formats] if isinstance(formats, str) else list(formats)
    return [
        save(fig, folder, stem, fmt, dpi, description, metadata=metadata)
        for fmt in formats
    ]


#: Per format, the names under which the creator and the description go.
_METADATA_KEYS = {
    "png": ("Software", "Description"),
    "svg": ("Creator", "Description"),
    "pdf": ("Creator", "Subject"),
}
#: The metadata names matplotlib's SVG writer takes (Dublin Core elements).
_SVG_KEYS = {
    "Title",
    "Coverage",
    "Date",
    "Description",
    "Format",
    "Identifier",
    "Language",
    "Relation",
    "Source",
    "Creator",
    "Contributor",
    "Publisher",
    "Rights",
    "Keywords",
    "Type",
}
#: PDF information entries that are not text.
_PDF_DATES = {"CreationDate", "ModDate"}


def _metadata(fmt, description, extra):
    """The ``metadata`` argument of ``savefig`` for ``fmt``."""
    from dynamics import __version__

    creator, describe = _METADATA_KEYS[fmt]
    entries = {creator: f"dynamics {__version__}", describe: description}
    extra = {str(key): value for key, value in extra.items()}
    if fmt == "pdf":
        for key, value in extra.items():
            if key in _PDF_DATES:
                value = _date(value)
                # A date the PDF standard cannot hold is kept as text beside it.
                key = key if isinstance(value, datetime.datetime) else key + "Text"
            entries[key] = value if key in _PDF_DATES else str(value)
    elif fmt == "svg":
        lines = [description] if description else []
        for key, value in extra.items():
            if key in _SVG_KEYS and key != "Description":
                entries[key] = str(value)
            else:
                lines.append(f"{key}: {value}")
        entries["Description"] = "\n".join(lines)
    else:
        entries.update({key: str(value) for key, value in extra.items()})
    return {key: value for key, value in entries.items() if value != ""}


def _date(value):
    """A datetime from a datetime or ISO 8601 text, else ``value`` unchanged."""
    if isinstance(value, datetime.datetime):
        return value
    try:
        return datetime.datetime.fromisoformat(str(value))
    except ValueError:
        return value


def _line_legend(fig, ax, style, **options):
    """A line figure's legend: in the axes, or under the figure when narrow."""
    if style.narrow:
        return fig.legend(
            loc="outside lower center", frameon=False, fontsize=style.small
        )
    return ax.legend(frameon=False, **options)


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
    (ax.set_xlabel if which == "x" else ax.set_ylabel)(axis_label(dim, log))


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
