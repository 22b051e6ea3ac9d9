"""The explorer, driven without a screen: sliders set in code, clicks sent as
mouse events through the canvas, and the drawn data checked against gradient
descent worked by hand."""

import os

import matplotlib
import numpy as np
import pytest
from matplotlib.backend_bases import MouseEvent
from matplotlib.colors import to_rgb
from matplotlib.contour import ContourSet
from PIL import Image

from dynamics import api, cli, engine, figures
from dynamics.config import load_config
from dynamics.errors import ConfigError
from dynamics.explore import WORK, Explorer, coarse, show

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = os.path.join(ROOT, "configs", "seed_quadratic.yaml")
# Quick to compile: no Lyapunov exponent or basins (the explorer shows neither),
# and one chunk size, so that seed maps of any size share one program.
QUICK = ["analysis.lyapunov=false", "analysis.basins=false", "chunk_size=64"]
SMALL = ["sweep.optimizer.learning_rate.num=24", "sweep.start.w.num=16", *QUICK]
HIMMELBLAU = {
    "objective": {"name": "himmelblau"},
    "start": {"x": 0.0, "y": 0.0},
    "optimizer": {"name": "sgd", "learning_rate": 0.01},
    "steps": 60,
    "analysis": {"lyapunov": False, "basins": False},
    "sweep": {
        "start.x": {"linspace": [-5.0, 5.0], "num": 8},
        "start.y": {"linspace": [-5.0, 5.0], "num": 8},
    },
}


@pytest.fixture(scope="module")
def seed_map():
    exp = load_config(SEED, SMALL)
    return exp, api.run(exp)


@pytest.fixture
def seed(seed_map):
    return Explorer(*seed_map)


def drawn(ax, gid):
    """The data of the one line of ``ax`` with this gid."""
    (line,) = [line for line in ax.lines if line.get_gid() == gid]
    return np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)


def title(ax):
    return ax.get_title(loc="left")


def descent(lr, w0, steps):
    """Gradient descent on J(w) = (w - 2)^2 + 1, by hand, in float64."""
    ws = [w0]
    for _ in range(steps):
        ws.append(ws[-1] - lr * 2 * (ws[-1] - 2))
    return np.array(ws)


def himmelblau_descent(lr, x, y, steps):
    points = [(x, y)]
    for _ in range(steps):
        a, b = x * x + y - 11, x + y * y - 7
        x, y = x - lr * (4 * x * a + 2 * b), y - lr * (2 * a + 4 * y * b)
        points.append((x, y))
    return np.array(points)


def click(explorer, x, y, button=1):
    """A real mouse press at data point (x, y) of the map, through the canvas."""
    px, py = explorer.map_ax.transData.transform((x, y))
    canvas = explorer.figure.canvas
    event = MouseEvent("button_press_event", canvas, px, py, button=button)
    canvas.callbacks.process("button_press_event", event)


def test_sliders_cover_the_map_and_move_the_run(seed):
    sliders = seed.sliders
    assert list(sliders) == ["start.w", "learning_rate", "steps"]
    ranges = {name: (s.valmin, s.valmax) for name, s in sliders.items()}
    np.testing.assert_allclose(ranges["learning_rate"], (0.01, 1.2), rtol=1e-6)
    np.testing.assert_allclose(ranges["start.w"], (-2.0, 6.0))
    assert ranges["steps"] == (1, 400) and sliders["steps"].valstep == 1
    # The config's own run first: lr 0.1 from w = 0, 200 steps.
    w, _ = drawn(seed.path_ax, "iterates")
    np.testing.assert_allclose(w, descent(0.1, 0.0, 200), atol=1e-5)

    sliders["learning_rate"].set_val(0.25)
    w, j = drawn(seed.path_ax, "iterates")
    np.testing.assert_allclose(w, descent(0.25, 0.0, 200), atol=1e-6)
    np.testing.assert_allclose(j, (w - 2) ** 2 + 1, rtol=1e-6)
    steps, loss = drawn(seed.loss_ax, "loss")
    np.testing.assert_array_equal(steps, np.arange(201))
    np.testing.assert_allclose(loss, (descent(0.25, 0.0, 200) - 2) ** 2 + 1, rtol=1e-6)
    assert "learning rate 0.25" in title(seed.path_ax)

    sliders["start.w"].set_val(5.0)
    sliders["steps"].set_val(12)
    w, _ = drawn(seed.path_ax, "iterates")
    np.testing.assert_allclose(w, descent(0.25, 5.0, 12), atol=1e-6)
    assert drawn(seed.loss_ax, "loss")[0].tolist() == list(range(13))
    assert seed.settings == {"start.w": 5.0, "learning_rate": 0.25, "steps": 12}
    # The map's marker follows the run: learning rate across, start up.
    (marker,) = [line for line in seed.map_ax.lines if line.get_marker() == "P"]
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (0.25, 5.0)


def test_a_learning_rate_above_one_is_drawn_diverging(seed):
    seed.sliders["steps"].set_val(20)
    seed.sliders["learning_rate"].set_val(1.2)
    # |1 - 2·1.2| = 1.4: each step lands 1.4 times further from the minimum.
    w, _ = drawn(seed.path_ax, "iterates")
    np.testing.assert_allclose(w, descent(1.2, 0.0, 20), rtol=1e-5)
    assert np.all(np.diff(np.abs(w - 2)) > 0)
    assert "diverged" not in title(seed.path_ax)

    # In float32 the loss 4·1.4^(2t) overflows first at t = 130
    # (2·1.4^129 = 1.4e19 < √3.4e38 = 1.8e19 < 2·1.4^130 = 2.0e19).
    seed.sliders["steps"].set_val(300)
    assert seed.diverged_at == 130
    assert "diverged at step 130" in title(seed.path_ax)
    assert "diverged at step 130" in title(seed.loss_ax)
    w, j = drawn(seed.path_ax, "iterates")
    assert len(w) == 130 and np.isfinite(w).all() and np.isfinite(j).all()
    steps, loss = drawn(seed.loss_ax, "loss")
    assert steps[-1] == 129 and np.all(np.diff(loss) > 0)


def test_a_click_on_a_cell_shows_that_run(seed, seed_map):
    _, ds = seed_map
    rates, starts = ds["optimizer.learning_rate"].values, ds["start.w"].values
    lr, w0 = float(rates[17]), float(starts[3])
    # Off the cell's centre, but inside it.
    click(seed, lr + 0.3 * (rates[1] - rates[0]), w0 - 0.3 * (starts[1] - starts[0]))

    assert seed.selected == {"optimizer.learning_rate": lr, "start.w": w0}
    assert seed.sliders["learning_rate"].val == lr
    assert seed.sliders["start.w"].val == w0
    w, j = drawn(seed.path_ax, "iterates")
    np.testing.assert_allclose(w, descent(lr, w0, 200), atol=1e-5)
    _, loss = drawn(seed.loss_ax, "loss")
    np.testing.assert_allclose(loss, (descent(lr, w0, 200) - 2) ** 2 + 1, atol=1e-5)
    # lr ≈ 0.89 zig-zags into the minimum; the map says so beside the cell.
    texts = " ".join(text.get_text() for text in seed.map_ax.texts)
    assert int(ds["regime"][17, 3]) == 0 and bool(ds["overshoot"][17, 3])
    assert "converged, overshoot" in texts

    # The corner cell at the largest rate diverges; a right click, or a click
    # beside the map, chooses nothing.
    click(seed, float(rates[-1]), float(starts[0]))
    assert seed.selected["optimizer.learning_rate"] == float(rates[-1])
    assert "diverged at step" in title(seed.path_ax)
    chosen = dict(seed.selected)
    click(seed, float(rates[0]), float(starts[0]), button=3)
    px, py = seed.loss_ax.transAxes.transform((0.5, 0.5))
    event = MouseEvent("button_press_event", seed.figure.canvas, px, py, button=1)
    seed.figure.canvas.callbacks.process("button_press_event", event)
    assert seed.selected == chosen


def test_the_map_takes_the_configs_palette(seed_map):
    exp, ds = seed_map
    bright = load_config(exp.config, ["figures.palette=tol_bright"])
    legends = {}
    for name, config in (("okabe_ito", exp), ("tol_bright", bright)):
        legend = Explorer(config, ds).map_ax.get_legend()
        legends[name] = [to_rgb(h.get_facecolor()) for h in legend.legend_handles]
    for name, colours in legends.items():
        expected = [to_rgb(c) for _, c in figures.PALETTES[name].classes()]
        assert colours == expected
    assert legends["okabe_ito"] != legends["tol_bright"]


def test_two_parameters_get_contours_and_a_slider_each():
    explorer = Explorer(HIMMELBLAU)
    assert list(explorer.sliders) == ["start.x", "start.y", "learning_rate", "steps"]
    assert any(isinstance(c, ContourSet) for c in explorer.path_ax.collections)

    explorer.sliders["start.x"].set_val(3.5)
    explorer.sliders["start.y"].set_val(2.5)
    x, y = drawn(explorer.path_ax, "iterates")
    expected = himmelblau_descent(0.01, 3.5, 2.5, 60)
    np.testing.assert_allclose(np.stack([x, y], axis=1), expected, atol=1e-4)
    np.testing.assert_allclose((x[-1], y[-1]), (3.0, 2.0), atol=1e-3)

    # A cell in the upper left runs to the minimum at (-2.805, 3.131).
    xs, ys = explorer.ds["start.x"].values, explorer.ds["start.y"].values
    click(explorer, float(xs[1]), float(ys[6]))
    assert explorer.settings["start.x"] == float(xs[1])
    assert explorer.settings["start.y"] == float(ys[6])
    x, y = drawn(explorer.path_ax, "iterates")
    expected = himmelblau_descent(0.01, float(xs[1]), float(ys[6]), 60)
    np.testing.assert_allclose(np.stack([x, y], axis=1), expected, atol=1e-4)
    np.testing.assert_allclose((x[-1], y[-1]), (-2.805, 3.131), atol=1e-3)


def test_a_network_gets_the_loss_only_and_a_log_rate_slider():
    config = {
        "objective": {"model": "mlp", "width": 4, "depth": 2},
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "steps": 20,
        "analysis": {"lyapunov": False, "basins": False},
        "sweep": {"optimizer.learning_rate": {"logspace": [-2, 1], "num": 6}},
    }
    explorer = Explorer(config)
    assert explorer.path_ax is None
    assert list(explorer.sliders) == ["learning_rate", "steps"]
    rate = explorer.sliders["learning_rate"]
    np.testing.assert_allclose((rate.valmin, rate.valmax, rate.val), (-2, 1, -1))

    rate.set_val(np.log10(0.5))
    assert explorer.settings["learning_rate"] == pytest.approx(0.5)
    assert "learning rate 0.5" in title(explorer.loss_ax)
    alone = {k: v for k, v in config.items() if k != "sweep"}
    expected = engine.path(load_config(alone, ["optimizer.learning_rate=0.5"])).loss
    steps, loss = drawn(explorer.loss_ax, "loss")
    assert steps.tolist() == list(range(21))
    np.testing.assert_allclose(loss, expected, rtol=1e-6)

    # On a log axis a click finds its cell too, and the slider its logarithm.
    rates = explorer.ds["optimizer.learning_rate"].values
    click(explorer, float(rates[4]) * 1.2, 0.5)
    assert rate.val == pytest.approx(np.log10(rates[4]))
    assert explorer.settings["learning_rate"] == pytest.approx(float(rates[4]))


def test_without_results_the_map_is_computed_coarse():
    # 240 x 161 in the file: each axis cut to 12 over the same range.
    explorer = Explorer(load_config(SEED, QUICK), resolution=12)
    assert explorer.ds["regime"].shape == (12, 12)
    rates = explorer.ds["optimizer.learning_rate"].values
    np.testing.assert_allclose(rates, np.linspace(0.01, 1.2, 12), rtol=1e-6)
    # Axes past the map's two are shown at their first value: only that is run.
    exp = load_config(SEED, ["sweep.optimizer.momentum=[0.5, 0.9]"])
    assert coarse(exp).shape == (96, 96, 1)
    assert coarse(exp).sweep[2].values.tolist() == [0.5]
    # A network's map is cut further, by the work it takes.
    fractal = coarse(os.path.join(ROOT, "configs", "fractal_lr_lr.yaml"))
    runs = fractal.n_runs * fractal.steps * len(engine.parameter_names(fractal))
    assert fractal.shape[0] == fractal.shape[1] < 96 and runs <= WORK


def test_show_saves_the_first_view_of_a_config_or_a_run(seed_map, tmp_path, capsys):
    exp, ds = seed_map
    folder = str(tmp_path / "run")
    api.save_run(exp, ds, folder)
    images = {}
    for source, overrides in ((folder, ()), (SEED, SMALL)):
        path = str(tmp_path / f"view{len(images)}.png")
        show(source, overrides, save=path)
        with Image.open(path) as image:
            images[source] = np.asarray(image.convert("RGB"), dtype=int)

    picture = images[folder]
    assert picture.shape[1] == 14 * 150  # 14 inches at the config's 150 dpi
    np.testing.assert_array_equal(picture, images[SEED])
    for colour in ("#0072B2", "#56B4E9", "#D55E00"):  # the map's three regimes
        target = np.round(np.array(to_rgb(colour)) * 255)
        assert (np.abs(picture - target).sum(axis=-1) < 10).sum() > 1000

    saved = str(tmp_path / "by_command.png")
    assert cli.main(["explore", folder, "--save", saved]) == 0
    assert capsys.readouterr().out == f"Wrote {saved}\n"
    with Image.open(saved) as image:
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), picture)

    with pytest.raises(ConfigError, match="run folder"):
        show(folder, ["steps=10"], save=str(tmp_path / "x.png"))
    with pytest.raises(ConfigError, match=r"\.png"):
        show(SEED, save=str(tmp_path / "view.gif"))


@pytest.mark.parametrize(
    "backend", ["agg", "svg", "module://matplotlib_inline.backend_inline"]
)
def test_show_without_a_display_says_how_to_fix_it(monkeypatch, backend):
    monkeypatch.setattr(matplotlib, "get_backend", lambda: backend)
    with pytest.raises(ConfigError, match="no display") as err:
        show(SEED)
    assert "MPLBACKEND" in str(err.value) and "--save" in str(err.value)
