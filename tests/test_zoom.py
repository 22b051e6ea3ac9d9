"""Zoom and refinement: windows, the refined map against a full run, the CLI."""

import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import yaml

import dynamics
from dynamics import ConfigError, cli, engine, load_config, results
from dynamics.zoom import (
    BudgetWarning,
    ResolutionWarning,
    refine,
    resolution_problem,
    window_around,
    zoom,
)

LR, W = "optimizer.learning_rate", "start.w"
HEAVY_BALL = {
    "name": "heavy-ball",
    "objective": {"name": "quadratic", "curvature": 2.0},
    "start": {"w": 1.0},
    "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.5},
    "steps": 200,
}


def lin(low, high, num):
    return {"linspace": [low, high], "num": num}


@pytest.fixture
def small(seed):
    """The seed quadratic on a 9 × 5 grid: boundaries at lr = 0.5 and lr = 1."""
    seed["sweep"] = {LR: lin(0.1, 1.3, 9), W: lin(-2.0, 6.0, 5)}
    return seed


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A finished run folder of the small map, made once."""
    out = tmp_path_factory.mktemp("template") / "run"
    small = {
        "name": "seed",
        "objective": {"expr": "(w - 2)**2 + 1"},
        "start": {"w": 0.0},
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "sweep": {LR: lin(0.1, 1.3, 9), W: lin(-2.0, 6.0, 5)},
    }
    dynamics.run(small, str(out))
    return out


@pytest.fixture
def finished(template, tmp_path):
    """A copy of the small map's run folder, alone in its own folder."""
    return shutil.copytree(template, tmp_path / "run")


def same_map(a, b):
    """Cells where two Datasets draw the same class on the stability map."""
    return (np.asarray(a["regime"]) == np.asarray(b["regime"])) & (
        np.asarray(a["overshoot"]) == np.asarray(b["overshoot"])
    )


# Zoom.


def test_a_window_is_swept_end_to_end_with_the_same_points_and_scale(seed):
    seed["sweep"] = {LR: {"logspace": [-2, 0.5], "num": 9}, W: lin(-2.0, 6.0, 5)}
    zoomed = zoom(load_config(seed), {LR: (0.5, 1.5), W: (1.0, 3.0)})
    lr, w = zoomed.sweep
    assert (lr.key, lr.scale, len(lr.values)) == (LR, "log", 9)
    assert lr.values[[0, -1]] == pytest.approx([0.5, 1.5], rel=1e-12)
    assert np.diff(np.log(lr.values)) == pytest.approx(np.log(3) / 8, rel=1e-9)
    assert (w.scale, w.values.tolist()) == ("linear", [1.0, 1.5, 2.0, 2.5, 3.0])
    assert zoomed.name == "seed-zoom"


def test_axes_not_in_the_window_keep_their_values_and_num_resamples(seed):
    seed["sweep"] = {LR: lin(0.1, 1.3, 9), W: [-1.0, 2.0, 4.0]}
    exp = load_config(seed)
    zoomed = zoom(exp, {LR: (2.0, 3.0)})  # outside the original range: allowed
    assert zoomed.sweep[0].values[[0, -1]].tolist() == [2.0, 3.0]
    assert zoomed.sweep[1].values.tolist() == [-1.0, 2.0, 4.0]
    finer = zoom(exp, {}, num=17)
    assert finer.shape == (17, 3)  # a list axis not in the window is kept
    assert finer.sweep[0].values[[0, -1]].tolist() == [0.1, 1.3]


def test_zoomed_results_equal_a_config_written_by_hand(finished, small):
    zoomed = dynamics.run(zoom(str(finished), {LR: (0.9, 1.1)}))
    small["sweep"] = {LR: lin(0.9, 1.1, 9), W: lin(-2.0, 6.0, 5)}
    by_hand = dynamics.run(small)
    assert zoomed["regime"].dims == by_hand["regime"].dims
    assert np.array_equal(zoomed[LR], by_hand[LR])
    assert np.array_equal(zoomed["regime"], by_hand["regime"])
    assert np.array_equal(zoomed["final_loss"], by_hand["final_loss"], equal_nan=True)
    assert 1 in zoomed["regime"].values  # lr = 1 itself: the period-2 cycle


def test_a_center_and_factor_give_a_window(small):
    exp = load_config(small)
    assert window_around(exp, {LR: 1.0}, 4.0) == {LR: (0.85, 1.15)}
    small["sweep"][LR] = {"logspace": [-3, 1], "num": 5}
    low, high = window_around(load_config(small), {LR: 0.1}, 2.0)[LR]
    assert (low, high) == pytest.approx((0.01, 1.0))


@pytest.mark.parametrize(
    "window, expected",
    [
        ({LR: (1.1, 0.9)}, "1.1:0.9: the low end must be below the high end"),
        ({LR: (1.0, 1.0)}, "write optimizer.learning_rate=LOW:HIGH with LOW < HIGH"),
        ({"optimizer.lr": (0.1, 1)}, "did you mean 'optimizer.learning_rate'?"),
        (
            {"optimizer.momentum": (0, 1)},
            "'optimizer.momentum' is not swept in this run; name one of its "
            "swept keys: optimizer.learning_rate, start.w",
        ),
        ({LR: (0.1,)}, "is not two numbers; give (low, high)"),
        ({LR: (0.1, float("nan"))}, "is not two numbers"),
    ],
)
def test_a_bad_window_names_the_key_and_the_fix(small, window, expected):
    with pytest.raises(ConfigError, match=None) as err:
        zoom(load_config(small), window)
    assert expected in str(err.value)


def test_a_log_axis_takes_only_positive_bounds(small):
    small["sweep"][LR] = {"logspace": [-3, 0], "num": 4}
    with pytest.raises(ConfigError) as err:
        zoom(load_config(small), {LR: (0.0, 0.5)})
    assert "is a log axis (logspace), so both ends must be above 0" in str(err.value)
    with pytest.raises(ConfigError, match="whole number of at least 2"):
        zoom(load_config(small), {}, num=1)


def test_a_source_that_is_not_a_run_folder(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; give a folder that"):
        zoom(str(tmp_path / "nope"), {})
    with pytest.raises(ConfigError, match="holds no config.yaml"):
        zoom(str(tmp_path), {})


# The dtype's resolution.


def test_a_window_narrower_than_float32_resolves_warns(small):
    window = {LR: (1.0 - 5e-8, 1.0 + 5e-8)}
    with pytest.warns(ResolutionWarning) as caught:
        zoom(load_config(small), window)
    message = str(caught[0].message)
    assert message.startswith("sweep axis 'optimizer.learning_rate': neighbouring")
    assert "ulps of float32 apart" in message and "set dtype: float64" in message
    small["dtype"] = "float64"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zoomed = zoom(load_config(small), window)
    assert resolution_problem(zoomed) is None
    narrower = load_config(
        zoomed.config, [f"sweep.{LR}={{linspace: [1, 1.000000000000002], num: 9}}"]
    )
    assert "narrower than float64 can resolve" in resolution_problem(narrower)


def test_float32_axes_a_few_ulps_apart_are_resolved(small):
    small["sweep"][LR] = lin(1.0, 1.0 + 8 * 8 * 2**-23, 9)  # 8 ulps apart
    assert resolution_problem(load_config(small)) is None
    small["sweep"][LR] = lin(1.0, 1.0 + 8 * 2 * 2**-23, 9)  # 2 ulps apart
    assert "2 ulps of float32" in resolution_problem(load_config(small))


def test_values_lost_to_rounding_are_counted_in_any_order(small):
    # 1 + k·2^-25 for k = 0..16 are a quarter ulp apart in float32: rounding
    # leaves the five values 1 + j·2^-23, j = 0..4, so 12 of the 17 are lost.
    values = 1.0 + np.arange(17) * 2.0**-25
    said = []
    for order in (values, values[::-1], np.random.default_rng(0).permutation(values)):
        small["sweep"][LR] = [float(v) for v in order]
        said.append(resolution_problem(load_config(small)))
    assert "12 of 17 values round to a value already taken" in said[0]
    assert said[0] == said[1] == said[2]
    small["sweep"][LR] = lin(1.0, 1.0 + 16 * 2.0**-25, 17)
    assert resolution_problem(load_config(small)) == said[0]


# Adaptive refinement.


def check_refined(coarse, fine, levels):
    """Refines ``coarse`` and compares with the full run of ``fine``."""
    misses = engine._program.cache_info().misses
    ds = refine(coarse, levels=levels)
    assert engine._program.cache_info().misses - misses <= 1  # one compilation
    full = dynamics.run(fine)
    assert set(results.VARIABLES) <= set(ds.data_vars) - {"computed"}
    assert set(ds.data_vars) - {"computed"} <= set(full.data_vars)
    assert ds["regime"].dims == full["regime"].dims
    for dim in full["regime"].dims:
        assert np.array_equal(ds[dim], full[dim])
    computed = np.asarray(ds["computed"])
    agree = same_map(ds, full)
    assert agree[computed].all()  # the runs themselves are the same runs
    assert agree.mean() >= 0.999, f"{(~agree).sum()} cells differ"
    assert ds.attrs["runs"] == computed.sum()
    assert ds.attrs["levels"] == levels
    assert ds.attrs["effective_resolution"] == list(full["regime"].shape)
    stride = 2**levels
    assert computed[(slice(None, None, stride),) * computed.ndim].all()
    return ds, agree


def test_refining_the_seed_map_equals_a_full_run_for_a_fifth_of_the_runs(seed):
    seed["sweep"] = {LR: lin(0.01, 1.2, 9), W: lin(-2.0, 6.0, 9)}
    fine = dict(seed, sweep={LR: lin(0.01, 1.2, 65), W: lin(-2.0, 6.0, 65)})
    ds, agree = check_refined(seed, fine, levels=3)
    assert agree.all()
    assert ds.attrs["runs"] / ds["computed"].size < 0.2
    filled = ~np.asarray(ds["computed"])
    assert np.isnan(np.asarray(ds["final_loss"])[filled]).all()
    wider = refine(seed, levels=3, margin=1)
    assert same_map(wider, ds).all() and wider.attrs["runs"] > ds.attrs["runs"]
    assert np.asarray(wider["computed"])[~filled].all()


def test_refining_a_curved_boundary_equals_a_full_run():
    # Heavy ball on curvature 2 converges for lr < 1 + momentum: a line, but a
    # curve over a log learning-rate axis, and refined midway in log space.
    lr = {"logspace": [-1, 0.5]}
    coarse = dict(
        HEAVY_BALL, sweep={LR: lr | {"num": 9}, "optimizer.momentum": lin(0, 0.9, 9)}
    )
    fine = dict(
        HEAVY_BALL,
        sweep={LR: lr | {"num": 65}, "optimizer.momentum": lin(0, 0.9, 65)},
    )
    ds, agree = check_refined(coarse, fine, levels=3)
    assert agree.all()
    assert ds.attrs["runs"] / ds["computed"].size < 0.2
    rates = np.asarray(ds[LR], dtype=float)[:, None]
    momentum = np.asarray(ds["optimizer.momentum"], dtype=float)[None, :]
    converged = np.asarray(ds["regime"]) == dynamics.Regime.CONVERGED
    clear = np.abs(rates - (1 + momentum)) > 0.02
    assert np.array_equal(converged[clear], (rates < 1 + momentum)[clear])


def test_refining_a_one_dimensional_sweep(seed):
    seed["sweep"] = {LR: lin(0.01, 1.2, 9)}
    fine = dict(seed, sweep={LR: lin(0.01, 1.2, 33)})
    ds, agree = check_refined(seed, fine, levels=2)
    assert agree.all() and ds.attrs["runs"] < 33


def test_a_budget_stops_refining_before_it_is_exceeded(small):
    with pytest.warns(BudgetWarning, match="stopped after 1 of 3 levels"):
        ds = refine(small, levels=3, budget=120)
    assert ds.attrs["levels"] == 1 and ds["regime"].shape == (17, 9)
    assert 100 < ds.attrs["runs"] <= 120
    fine = dict(small, sweep={LR: lin(0.1, 1.3, 17), W: lin(-2.0, 6.0, 9)})
    assert same_map(ds, dynamics.run(fine)).all()


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"budget": 10}, "cannot cover the coarse grid of 45; give at least 45"),
        ({"levels": -1}, "-1 is not from 0 to 16"),
        ({"levels": 2.5}, "is not a whole number"),
        ({"levels": 14}, "more than the 268,435,456 it can hold"),
        ({"margin": -1}, "margin: -1 is not a whole number from 0 to 8"),
    ],
)
def test_bad_refine_settings(small, settings, expected):
    with pytest.raises(ConfigError) as err:
        refine(small, **settings)
    assert expected in str(err.value)


# The command line.


def test_zoom_writes_a_new_run_folder(finished, capsys):
    new = finished.parent / "near-one"
    code = cli.main(
        ["zoom", str(finished), "--window", f"{LR}=0.9:1.1", "-o", str(new)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert f"{LR}: 0.9 to 1.1, 9 points (was 0.1 to 1.3, 9)" in out
    assert "seed-zoom: 45 runs (9 × 5)" in out
    assert {"results.zarr", "config.yaml", "stability_map.png"} <= set(os.listdir(new))
    with open(new / "config.yaml", encoding="utf-8") as handle:
        written = yaml.safe_load(handle)
    assert written["sweep"][LR] == lin(0.9, 1.1, 9)
    assert np.asarray(dynamics.load(str(new))[LR])[[0, -1]] == pytest.approx([0.9, 1.1])


def test_zoom_names_its_folder_beside_the_source(finished):
    (finished.parent / "run-zoom-1").mkdir()  # taken: the next number is used
    assert cli.main(["zoom", str(finished), "--center", f"{LR}=1", "-q"]) == 0
    assert sorted(os.listdir(finished.parent)) == ["run", "run-zoom-1", "run-zoom-2"]
    centred = dynamics.load(str(finished.parent / "run-zoom-2"))
    assert np.asarray(centred[LR])[[0, -1]] == pytest.approx([0.94, 1.06])


def test_adaptive_zoom_reports_the_runs_saved(finished, capsys):
    new = finished.parent / "sharp"
    argv = ["zoom", str(finished), "--adaptive", "--levels", "2", "--margin", "1"]
    argv += ["-o", str(new)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "seed-zoom: 561 cells (33 × 17)" in out
    ds = dynamics.load(str(new))
    assert f"adaptive: {ds.attrs['runs']:,} runs for 561 cells" in out
    assert "refinement.png" in os.listdir(new)
    assert ds["computed"].dtype == bool
    assert (ds.attrs["levels"], ds.attrs["margin"]) == (2, 1)


def test_a_window_too_narrow_for_float32_is_a_warning_not_an_error(finished, capsys):
    argv = ["zoom", str(finished), "--window", f"{LR}=0.99999995:1.00000005", "-q"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert err.startswith("dynamics: warning: sweep axis 'optimizer.learning_rate'")
    assert "set dtype: float64" in err and "--dtype float64`)" in err
    assert os.path.isdir(f"{finished}-zoom-1")
    assert cli.main([*argv, "--dtype", "float64"]) == 0
    assert capsys.readouterr().err == ""
    assert dynamics.load(f"{finished}-zoom-2").attrs["dtype"] == "float64"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["nope"], "'nope' does not exist; give a folder that `dynamics run -o`"),
        (["."], "holds no config.yaml, so it is not a run folder"),
        (["RUN", "--window", "lr=0.5"], "--window 'lr=0.5': write KEY=LOW:HIGH"),
        (["RUN", "--window", f"{LR}=a:b"], "with two numbers, as in --window"),
        (["RUN", "--window", f"{LR}=1:0.5"], "the low end must be below the high"),
        (["RUN", "--window", "start.v=0:1"], "did you mean 'start.w'?"),
        (["RUN", "--center", f"{LR}"], "--center 'optimizer.learning_rate': write"),
        (["RUN", "--factor", "2"], "--factor sets the size of a --center window"),
        (["RUN", "--budget", "9"], "--levels, --budget and --margin apply"),
        (["RUN"], "nothing to zoom: give --window KEY=LOW:HIGH"),
        (["RUN", "--adaptive", "--budget", "9"], "cannot cover the coarse grid"),
        (["RUN", "--num", "1"], "give a whole number of at least 2"),
        (
            ["RUN", "--factor", "2", "--levels", "0"],
            "--factor sets the size of a --center window; add --center\n"
            "--levels, --budget and --margin apply to --adaptive; add --adaptive\n"
            "--levels 0: give at least 1 doubling\n",
        ),
    ],
)
def test_bad_zoom_input_exits_2_and_writes_nothing(
    finished, capsys, monkeypatch, argv, expected
):
    parent = finished.parent
    monkeypatch.chdir(parent)
    before = sorted(os.listdir(parent)), sorted(os.listdir(finished))
    argv = [str(finished) if item == "RUN" else item for item in argv]
    code = cli.main(["zoom", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("dynamics: error: ") and "Traceback" not in err
    assert expected in err, err
    assert (sorted(os.listdir(parent)), sorted(os.listdir(finished))) == before


def test_a_real_process_exits_2_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dynamics", "zoom", "missing", "--window", "a=0:1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "dynamics: error: 'missing' does not exist; "
        "give a folder that `dynamics run -o` wrote\n"
    )
    assert result.stdout == "" and os.listdir(tmp_path) == []


def test_a_run_without_a_sweep_has_nothing_to_zoom(tmp_path, capsys):
    from dynamics import cli

    out = tmp_path / "single"
    dynamics.run(
        {
            "objective": {"expr": "w**2"},
            "start": {"w": 1.0},
            "optimizer": {"learning_rate": 0.1},
            "steps": 8,
        },
        str(out),
    )
    assert cli.main(["zoom", str(out), "--num", "4"]) == 2
    assert "no map to zoom into" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["single"]


def test_zoom_never_replaces_its_own_source(tmp_path, capsys):
    from dynamics import cli

    out = tmp_path / "run"
    dynamics.run(
        {
            "objective": {"expr": "(w - 2)**2 + 1"},
            "start": {"w": 0.0},
            "optimizer": {"learning_rate": 0.1},
            "steps": 8,
            "sweep": {"optimizer.learning_rate": [0.1, 0.5, 1.5]},
        },
        str(out),
    )
    before = sorted(os.listdir(out))
    assert cli.main(["zoom", str(out), "--num", "4", "-o", str(out), "--force"]) == 2
    assert "is the run being zoomed" in capsys.readouterr().err
    assert cli.main(["zoom", str(out), "--adaptive", "--levels", "0"]) == 2
    assert "--levels 0: give at least 1" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == before and sorted(os.listdir(tmp_path)) == ["run"]
