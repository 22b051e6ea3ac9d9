"""Animations, checked on the frames of the GIFs they write."""

import os

import jax
import numpy as np
import optax
import pytest
import yaml
from matplotlib.colors import to_rgb
from PIL import Image

import dynamics
from dynamics import engine, store
from dynamics.animate import CURRENT, animate_path, animate_zoom, zoom_maps
from dynamics.config import load_config


def frames(filename):
    with Image.open(filename) as image:
        pictures = []
        for index in range(image.n_frames):
            image.seek(index)
            pictures.append(np.asarray(image.convert("RGB"), dtype=int))
    return pictures


def marker(picture, colour=CURRENT, tolerance=40):
    """The (row, column) centre of the pixels of the current iterate's colour."""
    target = np.round(np.array(to_rgb(colour)) * 255)
    rows, cols = np.nonzero((np.abs(picture - target) < tolerance).all(axis=-1))
    assert rows.size > 0, "no pixel of the marker's colour"
    return rows.mean(), cols.mean()


def assert_all_differ(pictures):
    for before, after in zip(pictures, pictures[1:], strict=False):
        assert (before != after).any()


def test_seed_path_moves_right_towards_the_minimum(seed, tmp_path):
    # lr 0.1 on (w - 2)^2 + 1 maps w - 2 to 0.8·(w - 2): from 0 straight up to 2.
    seed["steps"] = 20
    gif = animate_path(seed, str(tmp_path / "seed.gif"), max_frames=6, dpi=50)

    pictures = frames(gif)
    assert len(pictures) == 6  # 21 iterates, evenly subsampled
    assert pictures[0].shape == (220, 320, 3)  # 6.4 × 4.4 inches at 50 dpi
    assert_all_differ(pictures)
    columns = [marker(picture)[1] for picture in pictures]
    assert np.all(np.diff(columns) > 0)
    width = pictures[0].shape[1]
    assert columns[0] < 0.4 * width < 0.7 * width < columns[-1]


def provenance(filename):
    """The ``name: text`` lines of a GIF's comment, and the config after them."""
    with Image.open(filename) as image:
        text = image.info["comment"].decode("utf-8")
    lines, _, config = text.partition("\nconfig:\n")
    return dict(line.split(": ", 1) for line in lines.splitlines()), config


def test_a_gif_records_what_made_it(seed, tmp_path):
    seed["steps"] = 20
    exp = load_config(seed)
    said, config = provenance(
        animate_path(exp, str(tmp_path / "seed.gif"), max_frames=3, dpi=30)
    )
    assert load_config(yaml.safe_load(config)).config == exp.config
    assert said["config_hash"] == store.config_hash(exp.to_yaml())
    assert said["animation"] == "descent path" and said["steps"] == "20"
    assert said["jax_version"] == jax.__version__
    assert said["optax_version"] == optax.__version__
    assert said["dtype"] == "float32" and said["platform"] == "cpu"
    assert said["started"] <= said["ended"] and "command" in said


def test_a_diverging_run_still_writes_a_gif(seed, tmp_path):
    # lr 1.5 triples the distance to the minimum each step: float32 overflows.
    exp = load_config(seed, ["optimizer.learning_rate=1.5", "steps=100"])
    assert not np.isfinite(engine.path(exp).loss[-1])
    gif = animate_path(exp, str(tmp_path / "diverged.gif"), max_frames=5, dpi=40)

    pictures = frames(gif)
    assert len(pictures) == 5  # four finite steps, then "diverged at step k"
    assert_all_differ(pictures)


def test_a_diverging_plane_path_stops_at_its_last_finite_step(tmp_path):
    # lr 0.1 on Himmelblau overflows float32 at step 5; iterates 0 to 4 are drawn.
    config = {
        "objective": {"name": "himmelblau"},
        "start": {"x": 0.0, "y": 0.0},
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "steps": 50,
    }
    assert np.flatnonzero(~np.isfinite(engine.path(load_config(config)).loss))[0] == 5
    gif = animate_path(config, str(tmp_path / "plane.gif"), max_frames=20, dpi=30)

    pictures = frames(gif)
    assert len(pictures) == 6
    assert_all_differ(pictures)


def test_himmelblau_path_on_contours_heads_for_its_minimum(tmp_path):
    # From the origin, gradient descent slides to the minimum at (3, 2): the
    # marker moves right and up.
    config = {
        "objective": {"name": "himmelblau"},
        "start": {"x": 0.0, "y": 0.0},
        "optimizer": {"name": "sgd", "learning_rate": 0.01},
        "steps": 30,
    }
    gif = animate_path(config, str(tmp_path / "himmelblau.gif"), max_frames=4, dpi=40)

    pictures = frames(gif)
    assert len(pictures) == 4
    assert pictures[0].shape == (176, 256, 3)
    assert_all_differ(pictures)
    (row0, col0), (row1, col1) = marker(pictures[0]), marker(pictures[-1])
    assert col1 > col0 + 40 and row1 < row0 - 20


def test_many_parameters_draw_the_loss_by_step(tmp_path):
    config = {
        "objective": {"name": "quadratic_nd", "spectrum": [1.0, 2.0, 3.0]},
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "steps": 10,
    }
    gif = animate_path(config, str(tmp_path / "loss.gif"), max_frames=20, dpi=30)

    pictures = frames(gif)
    assert len(pictures) == 11  # every iterate, fewer than max_frames
    assert_all_differ(pictures)


@pytest.fixture
def seed_map(seed):
    # Converged for lr < 1, diverged above: the boundary is the line lr = 1.
    seed["sweep"] = {
        "optimizer.learning_rate": {"logspace": [-2.0, 0.1], "num": 16},
        "start.w": {"linspace": [-2.0, 6.0], "num": 16},
    }
    return seed


def test_zoom_halves_the_window_and_stays_on_the_boundary(seed_map):
    maps = zoom_maps(seed_map, frames=3, resolution=16)

    decades = [np.ptp(np.log10(ds["optimizer.learning_rate"].values)) for ds in maps]
    widths = [np.ptp(ds["start.w"].values) for ds in maps]
    np.testing.assert_allclose(decades, [2.1, 1.05, 0.525], rtol=1e-4)
    np.testing.assert_allclose(widths, [8.0, 4.0, 2.0], rtol=1e-4)
    assert [ds.attrs["magnification"] for ds in maps] == [1.0, 2.0, 4.0]
    for ds in maps:
        rates = ds["optimizer.learning_rate"].values
        assert rates.min() < 1.0 < rates.max()
        assert ds["regime"].shape == (16, 16)


def test_zoom_gif_has_one_frame_per_window(seed_map, tmp_path):
    gif = animate_zoom(seed_map, str(tmp_path / "zoom.gif"), frames=3, resolution=16)

    pictures = frames(gif)
    assert len(pictures) == 3
    assert pictures[0].shape == (400, 576, 3)  # 7.2 × 5 inches at 80 dpi
    assert_all_differ(pictures)
    said, config = provenance(gif)
    assert said["config_hash"] == store.config_hash(load_config(seed_map).to_yaml())
    assert said["frames"] == "3" and said["resolution"] == "16"
    assert said["center"] == "the boundary, followed"


def test_zoom_on_a_fixed_center_keeps_it_in_the_middle(seed_map):
    center = {"optimizer.learning_rate": 0.5, "start.w": 1.0}
    last = zoom_maps(seed_map, center=center, frames=3, resolution=16)[-1]
    rates, starts = last["optimizer.learning_rate"].values, last["start.w"].values
    np.testing.assert_allclose(np.log10(rates.min() * rates.max()) / 2, np.log10(0.5))
    np.testing.assert_allclose((starts.min() + starts.max()) / 2, 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sweep": {}}, "two sweep axes"),
        ({"center": {"start.w": 1.0}}, "exactly the zoomed keys"),
        ({"center": {"optimizer.learning_rate": -1.0, "start.w": 1.0}}, "positive"),
        ({"factor": 1.5}, "factor"),
    ],
)
def test_zoom_refuses_what_it_cannot_do(seed_map, change, message):
    change = dict(change)
    if "sweep" in change:
        seed_map["sweep"] = change.pop("sweep")
    with pytest.raises(ValueError, match=message):
        zoom_maps(seed_map, **change)


# The command line.


def test_the_command_animates_a_run_folder_and_keeps_what_exists(tmp_path, capsys):
    from dynamics import cli

    out = tmp_path / "run"
    config = {
        "objective": {"expr": "(w - 2)**2 + 1"},
        "start": {"w": 0.0},
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "steps": 12,
        "sweep": {"optimizer.learning_rate": [0.1, 1.5], "start.w": [0.0, 1.0]},
    }
    dynamics.run(config, str(out))
    assert cli.main(["animate", str(out), "-q"]) == 0
    gif = out / "descent_path.gif"
    with Image.open(gif) as image:
        assert image.n_frames == 13  # the start and each of 12 steps
    assert provenance(gif)[0]["command"] == f"dynamics animate {out} -q"
    before = gif.stat().st_mtime_ns
    assert cli.main(["animate", str(out)]) == 2
    assert "add --force" in capsys.readouterr().err
    assert gif.stat().st_mtime_ns == before
    argv = ["animate", str(out), "--zoom", "--frames", "2", "--resolution", "8", "-q"]
    assert cli.main(argv) == 0
    with Image.open(out / "zoom.gif") as image:
        assert image.n_frames == 2
    assert not [name for name in os.listdir(out) if name.startswith(".")]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["animate", "missing"], "does not exist"),
        (["animate", "{run}", "--frames", "3"], "apply to --zoom"),
        (["animate", "{run}", "-o", "x.png"], "end the name in .gif"),
        (["animate", "{run}", "--steps", "0"], "--steps 0: give a whole number"),
        (["animate", "{run}", "--fps", "0"], "--fps 0: give frames per second"),
        (["animate", "{run}", "--zoom", "--factor", "0.5"], "give F above 1"),
        (["animate", "{run}", "--fps", "1e-9"], "--fps 1e-09: give frames"),
        (["animate", "{run}", "--steps", "100000000"], "give at most 1,000,000"),
        (  # every problem of the flags, not only the first
            ["animate", "{run}", "--fps", "0", "--max-frames", "1"],
            "--fps 0: give frames per second from 0.1 to 100\n"
            "--max-frames 1: give at least 2\n",
        ),
    ],
)
def test_bad_animate_arguments_exit_2(tmp_path, capsys, argv, message):
    from dynamics import cli

    run = tmp_path / "run"
    dynamics.run(
        {
            "objective": {"expr": "w**2"},
            "start": {"w": 1.0},
            "optimizer": {"learning_rate": 0.1},
            "steps": 8,
        },
        str(run),
    )
    argv = [item.format(run=run) for item in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dynamics: error: ") and message in err
    assert sorted(os.listdir(run)) == sorted(
        [
            "config.yaml",
            "results.zarr",
            "stability_map.png",
            "cost_tangent.png",
            "descent_path.png",
        ]
    )
