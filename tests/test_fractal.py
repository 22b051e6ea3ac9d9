"""Box-counting dimensions, checked on shapes whose dimension is known exactly."""

import math

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from dynamics.classify import Regime
from dynamics.fractal import Dimension, fractal_dimension, plot_box_counts

SIDE = 512


def half_plane(degrees, offset=(0.3, -0.1), side=SIDE):
    """Cells on one side of a line through the centre (shifted) at an angle."""
    rows, cols = np.mgrid[:side, :side] - side / 2
    angle = math.radians(degrees)
    return (cols - offset[0]) * math.sin(angle) > (rows - offset[1]) * math.cos(angle)


def koch_island(levels):
    """Mandelbrot's quadratic Koch island, one cell per shortest segment.

    Every segment becomes eight of a quarter its length (forward, left,
    forward, right, right, forward, left, forward), so the boundary has
    dimension log 8 / log 4 = 3/2. The bumps out and in cancel, so the island
    keeps the area of its starting square: the check that the curve never
    crosses itself and the fill is right.
    """
    turns = np.array([0, 1, 0, -1, -1, 0, 1, 0])
    headings = np.arange(4)
    for _ in range(levels):
        headings = ((headings[:, None] + turns) % 4).ravel()
    square = 4**levels
    # The bumps reach out a quarter, a sixteenth, ... of the square's side.
    side = 2 ** math.ceil(math.log2(square * 5 / 3))
    unit = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])
    corners = (side - square) // 2 + np.cumsum(
        np.concatenate([[[0, 0]], unit[headings]]), axis=0
    )

    # Even-odd fill: each vertical edge flips the cells to its right.
    flips = np.zeros((side, side + 1), dtype=np.int64)
    for (x, y0), (_, y1) in zip(corners[:-1], corners[1:], strict=True):
        if y0 != y1:
            flips[min(y0, y1) : max(y0, y1), x] += 1
    island = np.cumsum(flips, axis=1)[:, :side] % 2 == 1
    return island, square


def carpet(levels):
    """The base-4 carpet: of each square's 4 × 4 children, the middle 2 × 2 go.

    12 copies at a quarter the size: dimension log 12 / log 4. Its boundary
    (the edges of every hole) has the carpet's dimension.
    """
    digits = np.arange(4**levels)
    kept = np.ones((digits.size, digits.size), dtype=bool)
    for _ in range(levels):
        middle = np.isin(digits % 4, (1, 2))
        kept &= ~(middle[:, None] & middle[None, :])
        digits = digits // 4
    return kept


def cantor(levels):
    """The middle-thirds Cantor set on 3^levels cells: no ternary digit 1."""
    digits = np.arange(3**levels)
    kept = np.ones(digits.size, dtype=bool)
    for _ in range(levels):
        kept &= digits % 3 != 1
        digits = digits // 3
    return kept


def regimes(labels):
    """Regime codes with ``labels`` diverged and the rest a mix of the others."""
    others = np.array([Regime.CONVERGED, Regime.OSCILLATING, Regime.STALLED])
    rng = np.random.default_rng(0)
    codes = others[rng.integers(0, 3, labels.shape)]
    return np.where(labels, Regime.DIVERGED, codes).astype(np.int8)


def assert_same(dim, expected):
    assert dim.ndim == expected.ndim
    assert (dim.value, dim.low, dim.high) == (
        expected.value,
        expected.low,
        expected.high,
    )
    np.testing.assert_array_equal(dim.sizes, expected.sizes)
    np.testing.assert_array_equal(dim.counts, expected.counts)


def as_dataset(codes, dims=("optimizer.learning_rate", "start.w")):
    coords = {
        dims[0]: np.logspace(-3, 1, codes.shape[0]),
        dims[1]: np.linspace(-2.0, 2.0, codes.shape[1]),
    }
    return xr.Dataset({"regime": (dims, codes)}, coords=coords)


@pytest.mark.parametrize("degrees", [0, 15, 30, 45, 60, 75, 90, 120, 165])
def test_straight_boundary_is_one(degrees):
    dim = fractal_dimension(half_plane(degrees))
    assert abs(dim.value - 1) <= 0.05
    assert dim.low - 0.03 <= 1 <= dim.high + 0.03
    assert dim.high - dim.low <= 0.15


@pytest.mark.parametrize("row", [255, 256, 300])
def test_boundary_on_a_mesh_line_is_counted_once(row):
    # Row 256 sits on a mesh line at every box side: boxes that stopped short
    # of their far edge would never hold both labels there.
    rows = np.arange(SIDE)[:, None] + np.zeros(SIDE)
    dim = fractal_dimension(rows < row)
    np.testing.assert_array_equal(dim.counts, SIDE // dim.sizes)
    assert dim.value == pytest.approx(1.0, abs=1e-12)
    assert dim.low == pytest.approx(1.0, abs=1e-12)
    assert dim.high == pytest.approx(1.0, abs=1e-12)


def test_circle_is_one():
    x, y = np.mgrid[:SIDE, :SIDE] - SIDE / 2 + 0.5
    dim = fractal_dimension(x**2 + y**2 < (0.3 * SIDE) ** 2)
    assert abs(dim.value - 1) <= 0.05
    assert dim.low <= 1 <= dim.high


def test_quadratic_koch_island_is_three_halves():
    island, square = koch_island(4)
    assert island.shape == (SIDE, SIDE)
    assert island.sum() == square**2
    dim = fractal_dimension(island)
    assert abs(dim.value - 1.5) <= 0.05
    assert dim.low <= 1.5 <= dim.high


def test_carpet_boundary_has_the_carpet_dimension():
    dim = fractal_dimension(carpet(5))
    assert abs(dim.value - math.log(12) / math.log(4)) <= 0.05


def test_random_labels_fill_the_plane():
    labels = np.random.default_rng(0).random((SIDE, SIDE)) < 0.5
    dim = fractal_dimension(labels)
    assert abs(dim.value - 2) <= 0.02
    assert dim.high <= 2 + 1e-9


def test_single_step_on_an_axis_is_zero():
    dim = fractal_dimension(np.arange(1000) < 337)
    assert dim.ndim == 1
    np.testing.assert_array_equal(dim.counts, 1)
    assert dim.value == 0
    assert str(dim) == "0.00 (0.00–0.00)"


def test_cantor_set_on_an_axis():
    dim = fractal_dimension(cantor(10))
    assert dim.ndim == 1
    assert abs(dim.value - math.log(2) / math.log(3)) <= 0.05


def test_value_lies_in_its_interval():
    dim = fractal_dimension(koch_island(4)[0])
    assert dim.low <= dim.value <= dim.high
    assert dim.low < dim.high
    assert len(dim.sizes) == len(dim.counts) == 6
    np.testing.assert_array_equal(dim.sizes, 2 ** np.arange(1, 7))


def test_dataset_matches_array():
    island = koch_island(4)[0]
    codes = regimes(island)
    expected = fractal_dimension(island)

    assert_same(fractal_dimension(codes), expected)
    assert_same(fractal_dimension(as_dataset(codes)), expected)
    assert_same(fractal_dimension(as_dataset(codes)["regime"]), expected)
    assert_same(fractal_dimension(as_dataset(codes).transpose()), expected)
    # Sweep values given out of order are put back in order before counting.
    order = np.random.default_rng(1).permutation(SIDE)
    shuffled = as_dataset(codes).isel({"start.w": order})
    assert_same(fractal_dimension(shuffled), expected)
    assert fractal_dimension(shuffled["regime"].values).value > expected.value + 0.3


def test_dataset_with_one_swept_axis():
    codes = regimes(cantor(8))[:, None]
    ds = as_dataset(codes)
    assert_same(fractal_dimension(ds), fractal_dimension(cantor(8)))
    assert fractal_dimension(ds).ndim == 1


def test_inside_picks_the_regimes():
    codes = regimes(koch_island(4)[0])
    default = fractal_dimension(codes)
    assert_same(fractal_dimension(codes, inside=Regime.DIVERGED), default)
    outside = fractal_dimension(codes, inside=lambda r: r != Regime.DIVERGED)
    assert_same(outside, default)
    # The converged cells are a third of the outside, scattered at random.
    assert fractal_dimension(codes, inside=Regime.CONVERGED).value > 1.9


def test_box_sides():
    labels = half_plane(30, side=100)
    assert list(fractal_dimension(labels).sizes) == [2, 4, 8]
    assert list(fractal_dimension(labels, min_size=3).sizes) == [3, 6, 12]
    assert list(fractal_dimension(labels, max_size=40).sizes) == [2, 4, 8, 16, 32]


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (np.zeros((64, 64), dtype=bool), {}, "no boundary: all 4096 cells are outside"),
        (np.ones((64, 64), dtype=bool), {}, "no boundary: all 4096 cells are inside"),
        (np.zeros((64, 64), dtype=np.int8), {}, "read as regime codes"),
        (half_plane(30, side=57), {}, "sweep at least 58 values per axis"),
        (np.arange(40) < 7, {}, "sweep at least 58 values per axis"),
        (half_plane(30, side=29), {"min_size": 1}, "gives 2 box side(s)"),
        (half_plane(30, side=64), {"max_size": 6}, "raise max_size to at least 8"),
        (half_plane(30, side=64), {"max_size": 63}, "use at most 62"),
        (half_plane(30, side=64), {"min_size": 0}, "min_size=0"),
        (np.zeros((8, 8, 8), dtype=bool), {}, "got 3"),
        (np.zeros((1, 1), dtype=bool), {}, "got 0"),
        (np.full((64, 64), Regime.NOT_RUN), {}, "4096 of 4096 cells were not run"),
        (np.linspace(0, 1, 64), {}, "got an array of float64"),
        (half_plane(30, side=64), {"inside": 2}, "drop `inside`"),
        (np.zeros((64, 64), dtype=int), {"inside": 7}, "inside=7 is not a regime"),
        (np.zeros((64, 64), dtype=int), {"inside": np.sum}, "boolean array"),
        (np.zeros((64, 64), dtype=int), {"inside": "diverged"}, "dynamics.Regime"),
    ],
)
def test_errors_name_the_problem_and_the_fix(data, kwargs, message):
    with pytest.raises(ValueError, match="fractal_dimension") as info:
        fractal_dimension(data, **kwargs)
    assert message in str(info.value)


def test_partly_run_dataset_is_refused():
    codes = regimes(half_plane(30, side=64))
    codes[3, 5] = Regime.NOT_RUN
    with pytest.raises(ValueError, match="1 of 4096 cells were not run"):
        fractal_dimension(as_dataset(codes))


def test_three_swept_axes_are_refused():
    ds = xr.Dataset({"regime": (("a", "b", "c"), np.zeros((4, 4, 4), np.int8))})
    with pytest.raises(ValueError, match=r"\('a', 'b', 'c'\).*ds.isel"):
        fractal_dimension(ds)


def test_dataset_without_regime_is_refused():
    with pytest.raises(ValueError, match="no `regime` variable"):
        fractal_dimension(xr.Dataset({"loss": ("x", np.zeros(64))}))


def test_str():
    dim = Dimension(1.4249, 1.305, 1.5551, np.array([2, 4, 8]), np.ones(3), 2)
    assert str(dim) == "1.42 (1.30–1.56)"


def test_plot_box_counts(tmp_path):
    dim = fractal_dimension(koch_island(4)[0])
    fig = plot_box_counts(dim)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    points, line = [], []
    for artist in ax.get_lines():
        (points if artist.get_linestyle() == "None" else line).append(artist)
    assert len(points) == 1 and len(line) == 1
    np.testing.assert_array_equal(points[0].get_xdata(), dim.sizes)
    np.testing.assert_array_equal(points[0].get_ydata(), dim.counts)
    x, y = (np.log(values) for values in line[0].get_data())
    assert (y[1] - y[0]) / (x[1] - x[0]) == pytest.approx(-dim.value)
    assert str(dim) in ax.get_title(loc="left")
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_xlabel() and ax.get_ylabel()
    fig.savefig(tmp_path / "counts.png")
    assert (tmp_path / "counts.png").stat().st_size > 0
