"""A sweep that cannot fit is refused before any work, with the figures."""

import os

import pytest

from dynamics import api, cli, engine, resources
from dynamics.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "seed_quadratic.yaml")
SWEEP = ["sweep.optimizer.learning_rate.num=64", "sweep.start.w.num=32"]


def test_needs_count_every_result_of_every_run():
    exp = load_config(CONFIG, SWEEP)
    arrays = engine.outputs(exp)
    need = resources.needs(exp, arrays)
    # regime, overshoot, chaotic, nonfinite_start: 1 byte; period, diverged_at,
    # steps_to_converge: 4; initial, final and max loss, lyapunov, the end
    # point: 4 each in float32; the radius (8) and the basin (4) added later.
    assert need.per_run == 4 * 1 + 3 * 4 + 5 * 4 + 8 + 4
    results = 64 * 32 * need.per_run
    assert need.memory == resources.COPIES * results + resources.OVERHEAD
    assert need.disk == 2 * results + resources.OVERHEAD
    orbit = load_config(CONFIG, [*SWEEP, "analysis.orbit=w"])
    window = orbit.config["classify"]["window"]
    extra = resources.needs(orbit, engine.outputs(orbit)).per_run - need.per_run
    assert extra == 4 * window


@pytest.mark.parametrize(
    "memory, disk, message",
    [
        (
            2**20,
            None,
            "the sweep (2,048 runs × 48 bytes of results) needs about 0.3 GiB of "
            "memory to gather its results, and 0.0 GiB is available; sweep fewer "
            "values (sweep.KEY.num)",
        ),
        (
            None,
            2**20,
            "the sweep (2,048 runs × 48 bytes of results) needs about 0.3 GiB of "
            "disk in {parent}, and 0.0 GiB is free; free some space, or choose -o "
            "on another disk",
        ),
    ],
)
def test_a_sweep_that_does_not_fit_is_refused_untouched(
    tmp_path, monkeypatch, capsys, memory, disk, message
):
    monkeypatch.setattr(resources, "available_memory", lambda: memory)
    monkeypatch.setattr(resources, "available_disk", lambda path: disk)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", CONFIG, *SWEEP, "-o", "out"]) == 2
    expected = message.format(parent=tmp_path)
    assert capsys.readouterr().err == f"dynamics: error: {expected}\n"
    assert os.listdir(tmp_path) == []


def test_the_real_machine_has_room_for_a_small_sweep(tmp_path):
    exp = load_config(CONFIG, SWEEP)
    need = resources.check(exp, engine.outputs(exp), str(tmp_path / "out"))
    assert need.memory < resources.available_memory()
    assert api.run(exp, str(tmp_path / "out"))["regime"].size == 64 * 32


MODEL = """\
objective: {model: mlp, width: 400, depth: 2}
optimizer: {learning_rate: 0.1}
steps: 8
"""


@pytest.mark.parametrize(
    "config, message",
    [
        (
            # Data grows as width³: 160,400 points of 400 inputs, drawn in
            # float32 and held up to eight times over, is about 2 GiB.
            MODEL,
            "m.yaml:1: objective: an mlp of width 400 and depth 2 has 160,400 "
            "parameters and 160,400 data points of 400 inputs: about 1.9 GiB to "
            "build, and 1.0 GiB of memory is available; lower objective.width, "
            "objective.depth or objective.data_ratio",
        ),
        (
            MODEL.replace("mlp, width: 400, depth: 2", "linear, dim: 3000"),
            "m.yaml:1: objective: linear regression of dim 3,000 has 12,004 data "
            "points: about 1.1 GiB to build, and 1.0 GiB of memory is available; "
            "lower objective.dim or objective.data_ratio",
        ),
        (
            MODEL.replace(
                "model: mlp, width: 400, depth: 2",
                "name: quadratic_nd, spectrum: [" + ", ".join(["1.0"] * 6000) + "]",
            ),
            "m.yaml:1: objective: quadratic_nd with 6,000 eigenvalues holds "
            "6,000² matrices: about 1.2 GiB to build, and 1.0 GiB of memory is "
            "available; give objective.spectrum fewer eigenvalues",
        ),
        (
            # Each parameter is also named in the results: 20 million names.
            MODEL.replace("mlp, width: 400, depth: 2", "uv, width: 10000000"),
            "m.yaml:1: objective: the uv model of width 10,000,000: about 2.5 GiB "
            "to build, and 1.0 GiB of memory is available; lower objective.width",
        ),
    ],
    ids=["mlp", "linear", "quadratic_nd", "uv"],
)
def test_an_objective_too_big_to_build_is_refused_before_it_is_drawn(
    tmp_path, monkeypatch, capsys, config, message
):
    monkeypatch.setattr(resources, "available_memory", lambda: 2**30)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(config)
    assert cli.main(["run", "m.yaml", "-o", "out"]) == 2
    assert capsys.readouterr().err == f"dynamics: error: {message}\n"
    assert os.listdir(tmp_path) == ["m.yaml"]
