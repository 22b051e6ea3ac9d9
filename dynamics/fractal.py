r"""The box-counting dimension of the boundary between two regimes.

Cover the map with a mesh of boxes of side :math:`s` cells and count
:math:`N(s)`, the boxes that hold cells of both labels. A smooth boundary
crosses about :math:`L/s` of them, a boundary that fills the plane
:math:`(L/s)^2`; in between, :math:`N(s) \propto s^{-D}` defines the box
dimension :math:`D`, read off as minus the slope of :math:`\log N` against
:math:`\log s`. Sides double from ``min_size`` until a few boxes are left
across the grid.

Boxes are closed, in the lattice of cell centres: the box at :math:`(i, j)`
spans centres :math:`is \ldots (i+1)s` and :math:`js \ldots (j+1)s`, so it
shares its last row and column with its neighbours. A boundary that runs along
a mesh line is then seen by the boxes on both sides, as a closed cover sees a
set, instead of falling between them and vanishing at every size that divides
its position. The boxes at the far edges of a grid whose side is not a
multiple of :math:`s` are kept, cut short: they are mesh boxes meeting the
map, and dropping them would shrink the region counted as :math:`s` grows.

Counting happens in index space, whatever the coordinates of the sweep (a
log-spaced learning rate, say): the box dimension is unchanged by a smooth
change of coordinates with a smooth inverse (bi-Lipschitz over the swept
range), so the grid's own spacing serves.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from matplotlib.figure import Figure

from dynamics.classify import Regime
from dynamics.figures import Style

#: Fewest boxes across the shortest side at the largest default box side.
MIN_BOXES = 8
#: Fewest box sides in a fit, and so in a map.
MIN_SCALES = 3


class Dimension(NamedTuple):
    r"""A box-counting dimension and what it was read from.

    Attributes:
      value: minus the slope of the least-squares line through
        :math:`(\log s, \log N(s))` over every box side.
      low, high: the smallest and largest such slopes (negated) over every run
        of at least :data:`MIN_SCALES` consecutive box sides: how much the
        answer depends on the range of scales chosen. Not a confidence
        interval: it is narrow when the counts follow one power law, and wide
        when the slope drifts with scale.
      sizes: the box sides, in cells.
      counts: the boxes at each side that hold both labels.
      ndim: 1 for a single swept axis, 2 for a map.
    """

    value: float
    low: float
    high: float
    sizes: np.ndarray
    counts: np.ndarray
    ndim: int

    def __str__(self):
        value, low, high = map(_two_places, (self.value, self.low, self.high))
        return f"{value} ({low}–{high})"


def fractal_dimension(
    data,
    *,
    inside: int | Callable | None = None,
    min_size: int = 2,
    max_size: int | None = None,
) -> Dimension:
    """The box-counting dimension of the boundary between two labels of a grid.

    Args:
      data: a results Dataset (its ``regime`` variable over one or two sweep
        axes), a ``regime`` DataArray, an integer array of :class:`Regime`
        codes, or a boolean array that is the two labels itself. Axes of
        length one are dropped; xarray axes are sorted by their coordinates.
      inside: which regimes form one side: a :class:`Regime` code, or a
        function from an array of codes to a boolean array. By default
        diverged against every other regime that ran: trainable against
        untrainable, the split of Sohl-Dickstein (2024). Not for a boolean
        array, which is the labels already.
      min_size: the smallest box side, in cells.
      max_size: the largest box side, in cells (default: the largest that
        leaves :data:`MIN_BOXES` boxes across the shortest side).

    Returns:
      A :class:`Dimension`. A smooth boundary gives about 1, a boundary that
      fills the map 2, one that is rough at every scale something in
      between. On a single axis, the boxes are intervals and the "boundary"
      is the set of label changes: a single step gives 0.

    Raises:
      ValueError: when the grid holds only one label, has more than two axes
        longer than one, holds runs that were not run, or is too small for
        :data:`MIN_SCALES` box sides.

    >>> import numpy as np
    >>> x, y = np.mgrid[-64:64, -64:64] + 0.5
    >>> print(fractal_dimension(x**2 + y**2 < 40**2))  # a disc's smooth edge
    1.00 (1.00–1.00)
    """
    labels = _labels(data, inside)
    sizes = _box_sides(labels.shape, min_size, max_size)
    counts = np.array([_mixed_boxes(labels, int(size)) for size in sizes])

    log_size, log_count = np.log(sizes), np.log(counts)
    value = -_slope(log_size, log_count)
    fits = [
        -_slope(log_size[start:stop], log_count[start:stop])
        for start in range(len(sizes))
        for stop in range(start + MIN_SCALES, len(sizes) + 1)
    ]
    return Dimension(
        float(value), float(min(fits)), float(max(fits)), sizes, counts, labels.ndim
    )


def plot_box_counts(dimension: Dimension, *, style: Style | None = None) -> Figure:
    """The box counts against box side on log-log axes, with the fitted line.

    The title gives the dimension and its interval; the line is the fit over
    every box side, with slope minus the dimension. ``style`` is a
    :class:`dynamics.figures.Style` (default: the default style).
    """
    style = Style.of(None, style)
    with style.context():
        return _draw_box_counts(dimension, style)


def _draw_box_counts(dimension, style):
    colours = style.colours
    sizes = np.asarray(dimension.sizes, dtype=float)
    counts = np.asarray(dimension.counts, dtype=float)
    # The least-squares line with the fitted slope passes through the centroid.
    intercept = np.mean(np.log(counts) + dimension.value * np.log(sizes))

    fig = style.figure(4.4 / 6.0, narrow_aspect=1.0)
    ax = fig.add_subplot()
    span = np.array([sizes[0] / 1.3, sizes[-1] * 1.3])
    ax.plot(
        span,
        np.exp(intercept) * span**-dimension.value,
        color=colours.accent,
        lw=1.5,
        ls="--",
        label=f"fit over all sides: slope {-dimension.value:.3f}",
    )
    ax.plot(
        sizes,
        counts,
        "o",
        color=colours.line,
        ms=7,
        zorder=3,
        label="boxes holding both labels",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    what = "boxes" if dimension.ndim == 2 else "intervals"
    ax.set_xlabel(
        "box side s (cells)" if dimension.ndim == 2 else "interval length s (cells)"
    )
    ax.set_ylabel(f"N(s): {what} holding both labels")
    ax.set_title(f"box-counting dimension {dimension}", loc="left")
    note = f"in brackets: the fits over ≥ {MIN_SCALES} consecutive sides"
    if style.narrow:
        fig.legend(
            loc="outside lower center",
            frameon=False,
            fontsize=style.small,
            title=note,
            title_fontsize=style.small,
        )
    else:
        ax.legend(
            loc="upper right", frameon=False, title=note, title_fontsize=style.small
        )
    return fig


def _labels(data, inside):
    """The grid as a boolean array of one or two axes, checked."""
    if hasattr(data, "data_vars"):
        if "regime" not in data:
            raise ValueError(
                "fractal_dimension: the Dataset has no `regime` variable; pass "
                "a results Dataset from dynamics.run or dynamics.load, or an array"
            )
        data = data["regime"]
    if hasattr(data, "dims"):
        data = data.squeeze(drop=True)
        for dim in data.dims:
            if dim in data.coords:
                data = data.sortby(dim)
        names = tuple(data.dims)
    else:
        data = np.squeeze(np.asarray(data))
        names = ()
    values = np.asarray(data)

    if values.ndim not in (1, 2):
        where = f" {names}" if names else ""
        raise ValueError(
            f"fractal_dimension: needs one or two axes longer than one, got "
            f"{values.ndim}{where} of shape {values.shape}; pick a plane with "
            "ds.isel(...) or ds.sel(...)"
        )
    if values.dtype == bool:
        if inside is not None:
            raise ValueError(
                "fractal_dimension: `inside` picks regimes from regime codes, but "
                "the array is boolean and already the two labels; drop `inside`"
            )
        labels = values
    elif np.issubdtype(values.dtype, np.integer):
        labels = _split(values, inside)
    else:
        raise ValueError(
            f"fractal_dimension: expected boolean labels or integer regime codes, "
            f"got an array of {values.dtype}; pass e.g. `values > 0.5`"
        )

    if labels.all() or not labels.any():
        side = "inside" if labels.all() else "outside"
        hint = (
            "; an integer array is read as regime codes: pass a boolean array "
            "for labels of your own"
            if values.dtype != bool and not names
            else ""
        )
        raise ValueError(
            f"fractal_dimension: no boundary: all {labels.size} cells are {side} "
            f"the region{hint}. Choose `inside` so that both labels occur, or "
            "widen the sweep"
        )
    return labels


def _split(codes, inside):
    """The side of each run from its regime code."""
    not_run = int(np.sum(codes == Regime.NOT_RUN))
    if not_run:
        raise ValueError(
            f"fractal_dimension: {not_run} of {codes.size} cells were not run "
            f"(regime {int(Regime.NOT_RUN)}), and a gap would be counted as "
            "boundary or hide it; finish the sweep, or pass a fully run block "
            "with ds.isel(...)"
        )
    if inside is None:
        return codes == Regime.DIVERGED
    if callable(inside):
        mask = np.asarray(inside(codes))
        if mask.shape != codes.shape or mask.dtype != bool:
            raise ValueError(
                f"fractal_dimension: `inside` must map the {codes.shape} array of "
                f"codes to a boolean array of that shape, got {mask.dtype} "
                f"{mask.shape}"
            )
        return mask
    known = [int(regime) for regime in Regime if regime != Regime.NOT_RUN]
    is_code = isinstance(inside, int | np.integer) and not isinstance(inside, bool)
    if not is_code or int(inside) not in known:
        raise ValueError(
            f"fractal_dimension: inside={inside!r} is not a regime code; use one "
            f"of {known} (dynamics.Regime) or a function of the codes"
        )
    return codes == int(inside)


def _box_sides(shape, min_size, max_size):
    """Box sides ``min_size · 2^k`` up to the cap, at least MIN_SCALES of them."""
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise ValueError(
            f"fractal_dimension: min_size={min_size!r} must be a whole number of "
            "cells, at least 1"
        )
    shortest = min(shape)
    if max_size is None:
        # ceil((n - 1) / s) >= MIN_BOXES, in whole numbers.
        cap = (shortest - 2) // (MIN_BOXES - 1)
    elif shortest - 1 <= max_size:
        raise ValueError(
            f"fractal_dimension: max_size={max_size!r} spans the whole grid "
            f"(shortest side {shortest} cells), so every box would hold it all; "
            f"use at most {shortest - 2}"
        )
    else:
        cap = max_size
    sizes = [min_size]
    while 2 * sizes[-1] <= cap:
        sizes.append(2 * sizes[-1])
    if sizes[-1] > cap or len(sizes) < MIN_SCALES:
        largest = min_size * 2 ** (MIN_SCALES - 1)
        found = len(sizes) if sizes[-1] <= cap else 0
        if max_size is not None:
            fix = f"raise max_size to at least {largest}"
        else:
            need = (MIN_BOXES - 1) * largest + 2
            fix = f"sweep at least {need} values per axis"
        raise ValueError(
            f"fractal_dimension: a grid of shape {tuple(shape)} gives {found} box "
            f"side(s) from min_size={min_size}, and a fit needs {MIN_SCALES} "
            f"({min_size} to {largest}); {fix}, or lower min_size"
        )
    return np.array(sizes)


def _mixed_boxes(labels, size):
    """How many closed boxes of side ``size`` hold both labels."""
    high = low = labels.astype(np.uint8)
    for axis in range(labels.ndim):
        high = _closed_blocks(high, size, axis, np.maximum)
        low = _closed_blocks(low, size, axis, np.minimum)
    return int(np.sum(high != low))


def _closed_blocks(values, size, axis, reduce):
    """Reduces blocks ``ks … (k+1)s`` (inclusive) of cell centres along an axis."""
    starts = np.arange(0, values.shape[axis] - 1, size)
    blocks = reduce.reduceat(values, starts, axis=axis)
    # reduceat stops each block before the next one's start; a closed box also
    # takes that shared row. The last block already runs to the grid's end.
    shared = np.take(values, starts[1:], axis=axis)
    head = [slice(None)] * values.ndim
    head[axis] = slice(0, -1)
    blocks[tuple(head)] = reduce(blocks[tuple(head)], shared)
    return blocks


def _two_places(value):
    # Adding zero turns a rounded -0.0 (a flat count) into 0.0.
    return f"{round(value, 2) + 0.0:.2f}"


def _slope(x, y):
    x = x - x.mean()
    return float(np.dot(x, y - y.mean()) / np.dot(x, x))
