"""Figures, checked on their rendered pixels."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb

import dynamics
from dynamics.figures import CLASSES


def render(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3]


def inside(fig, image, margin=3):
    """The pixels strictly inside the (single) map's axes."""
    box = fig.axes[0].get_window_extent()
    height = image.shape[0]
    top, bottom = int(height - box.y1) + margin, int(height - box.y0) - margin
    left, right = int(box.x0) + margin, int(box.x1) - margin
    return image[top:bottom, left:right]


def colour(label):
    rgb = to_rgb(dict(CLASSES)[label])
    return np.round(np.array(rgb) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def corner():
    # GD on w^4/4 maps w to w - lr·w^3: only lr·w0^2 > 2 blows up, and on this
    # grid that is the largest learning rate with the largest start alone.
    return dynamics.run(
        {
            "objective": {"expr": "w**4 / 4"},
            "start": {"w": 1.0},
            "optimizer": {"learning_rate": 0.1},
            "steps": 100,
            "sweep": {
                "optimizer.learning_rate": [0.1, 0.2, 0.3],
                "start.w": [1.0, 2.0, 3.0],
            },
        }
    )


def test_only_diverged_cell_is_drawn_top_right(corner):
    regime = corner["regime"].values
    assert regime[2, 2] == dynamics.Regime.DIVERGED
    assert (np.delete(regime.ravel(), 8) != dynamics.Regime.DIVERGED).all()

    fig = dynamics.plot_stability_map(corner)
    pixels = inside(fig, render(fig))
    rows, cols = np.nonzero((pixels == colour("diverged")).all(axis=-1))
    height, width = pixels.shape[:2]
    assert rows.size > 0
    assert rows.max() < height / 3 + 2 and cols.min() > 2 * width / 3 - 2
    ax = fig.axes[0]
    assert ax.get_xlabel() == "learning rate α\noptimizer.learning_rate"
    assert ax.get_ylabel() == "start w\nstart.w"
    assert ax.get_xlim()[0] < ax.get_xlim()[1] and ax.get_ylim()[0] < ax.get_ylim()[1]


def test_swapping_the_sweep_order_swaps_the_axes(corner):
    swapped = corner.transpose("start.w", "optimizer.learning_rate", ...)
    fig = dynamics.plot_stability_map(swapped)
    assert fig.axes[0].get_xlabel() == "start w\nstart.w"
    pixels = inside(fig, render(fig))
    rows, cols = np.nonzero((pixels == colour("diverged")).all(axis=-1))
    assert rows.max() < pixels.shape[0] / 3 + 2
    assert cols.min() > 2 * pixels.shape[1] / 3 - 2


def test_every_regime_is_in_the_legend_even_when_absent(corner):
    fig = dynamics.plot_stability_map(corner)
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert [label.rsplit(" (", 1)[0] for label in labels] == [c for c, _ in CLASSES]
    counts = [int(label.rsplit(" (", 1)[1].rstrip(")")) for label in labels]
    assert sum(counts) == corner["regime"].size
    assert "not run (0)" in labels and counts.count(0) >= 2  # absent, still listed


def test_pixels_are_never_blended_between_classes(seed):
    seed["sweep"] = {
        "optimizer.learning_rate": {"linspace": [0.01, 1.2], "num": 240},
        "start.w": {"linspace": [-2.0, 6.0], "num": 161},
    }
    ds = dynamics.run(seed)
    fig = dynamics.plot_stability_map(ds)
    pixels = inside(fig, render(fig)).reshape(-1, 3)
    palette = {tuple(colour(label)) for label, _ in CLASSES}
    found = {tuple(p) for p in np.unique(pixels, axis=0)}
    assert found <= palette, found - palette
    assert len(found) == 3  # converged, overshoot, diverged


def test_log_axes_have_geometric_cells(seed):
    seed["sweep"] = {
        "optimizer.learning_rate": {"logspace": [-3, 0.5], "num": 8},
        "start.w": [0.0, 4.0],
    }
    ds = dynamics.run(seed)
    fig = dynamics.plot_stability_map(ds)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    mesh = ax.collections[0]
    edges = np.unique(mesh.get_coordinates()[..., 0])
    ratios = edges[1:] / edges[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)
    centres = np.sqrt(edges[1:] * edges[:-1])
    np.testing.assert_allclose(centres, ds["optimizer.learning_rate"].values, rtol=1e-5)


def test_a_third_axis_is_shown_at_its_first_value(seed):
    seed["optimizer"]["momentum"] = 0.0
    seed["sweep"] = {
        "optimizer.learning_rate": [0.1, 1.5],
        "start.w": [0.0, 1.0],
        "optimizer.momentum": [0.0, 0.9],
    }
    fig = dynamics.plot_stability_map(dynamics.run(seed))
    assert "optimizer.momentum = 0" in fig.axes[0].get_title(loc="left")


def test_cost_tangent_and_descent_path_show_the_configured_run(seed):
    exp = dynamics.load_config(seed)
    fig = dynamics.plot_cost_tangent(exp)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("slope J'(0) = -4" in label for label in labels)
    fig = dynamics.plot_descent_path(exp)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "start w = 0" in labels and any(
        lab.startswith("end w = 2") for lab in labels
    )
    assert len(fig.axes) == 2


def test_a_map_larger_than_the_figure_is_drawn_every_kth_cell(corner, monkeypatch):
    # With room for 2 cells a side, the 3 x 3 map shows cells 0 and 2 of each
    # axis over their true extents: the diverged corner still fills the top
    # right, and the legend still counts all nine runs.
    from dynamics import figures

    monkeypatch.setattr(figures, "MAX_DRAWN", 2)
    fig = dynamics.plot_stability_map(corner)
    mesh = fig.axes[0].collections[0]
    assert mesh.get_array().shape == (2, 2)
    assert mesh.get_array()[1, 1] == 3  # diverged, drawn from cell (2, 2)
    coordinates = mesh.get_coordinates()
    assert coordinates[0, -1, 0] == pytest.approx(0.35)  # the last edge of 0.3
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert "diverged (1)" in labels
    assert sum(int(label.split("(")[1].rstrip(")")) for label in labels) == 9
