"""Results: the Dataset's shape and metadata, the store on disk, the command line."""

import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import dynamics
from dynamics import cli


@pytest.fixture
def small(seed):
    seed["sweep"] = {
        "optimizer.learning_rate": {"linspace": [0.1, 1.2], "num": 12},
        "start.w": [-1.0, 2.0, 4.0],
    }
    return seed


def test_dataset_is_labelled_by_the_sweep(small):
    ds = dynamics.run(small)
    assert ds["regime"].dims == ("optimizer.learning_rate", "start.w")
    assert ds["start.w"].values.tolist() == [-1.0, 2.0, 4.0]
    assert set(ds.data_vars) == {
        "regime",
        "overshoot",
        "period",
        "nonfinite_start",
        "initial_loss",
        "final_loss",
        "max_loss",
        "steps_to_converge",
        "diverged_at",
        "lyapunov",
        "chaotic",
        "basin",
        "basin_minimum",
        "basin_loss",
        "theory_radius",
    }
    assert ds.attrs["theory_agreement"] == 1.0
    assert ds["basin_minimum"].sel(parameter="w").values == pytest.approx([2.0])
    attrs = ds["regime"].attrs
    meanings = attrs["flag_meanings"].split()
    assert {"converged", "oscillating", "diverged"} <= set(meanings)
    assert len(meanings) == len(attrs["flag_values"])
    code = dict(zip(meanings, attrs["flag_values"], strict=True))
    assert (
        ds["regime"].sel({"optimizer.learning_rate": 1.2, "start.w": -1.0})
        == code["diverged"]
    )
    for key in (
        "config",
        "dynamics_version",
        "jax_version",
        "numpy_version",
        "dtype",
        "device_count",
    ):
        assert key in ds.attrs
    assert ds.attrs["device_count"] >= 1


def test_run_writes_a_store_that_load_reopens(small, tmp_path):
    out = str(tmp_path / "run")
    ds = dynamics.run(small, out)
    names = sorted(os.listdir(out))
    assert os.stat(out).st_mode & 0o755 == 0o755  # not private like a temp dir
    assert names == [
        "config.yaml",
        "cost_tangent.png",
        "descent_path.png",
        "period_map.png",
        "results.zarr",
        "stability_map.png",
        "theory_overlay.png",
    ]
    again = dynamics.load(out)
    xr.testing.assert_identical(ds.load(), again.load())
    plain = xr.open_zarr(os.path.join(out, "results.zarr"))  # warnings are errors
    assert plain["regime"].attrs["flag_meanings"] == ds["regime"].attrs["flag_meanings"]
    assert dynamics.load_config(os.path.join(out, "config.yaml")).shape == (12, 3)


def test_an_existing_run_is_kept_unless_forced(small, tmp_path):
    out = str(tmp_path / "run")
    dynamics.run(small, out)
    before = os.path.getmtime(os.path.join(out, "stability_map.png"))
    with pytest.raises(dynamics.ConfigError, match="already exists.*--force"):
        dynamics.run(small, out)
    assert os.path.getmtime(os.path.join(out, "stability_map.png")) == before
    small["steps"] = 50
    dynamics.run(small, out, force=True)
    assert dynamics.load(out).attrs["config"].count("steps: 50") == 1
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no staging folder left over


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_figures_in_vector_formats(small, tmp_path, fmt):
    out = tmp_path / "run"
    dynamics.run(small, str(out), figure_format=fmt)
    assert (out / f"stability_map.{fmt}").stat().st_size > 1000
    assert not (out / "stability_map.png").exists()


def test_two_parameter_objective_gets_no_cost_curve(tmp_path):
    out = tmp_path / "run"
    dynamics.run(
        {
            "objective": {"expr": "x**2 + 3 * y**2 + x**4"},
            "start": {"x": 1.0, "y": 1.0},
            "optimizer": {"learning_rate": 0.1},
            "sweep": {"optimizer.learning_rate": [0.1, 0.5], "start.x": [1.0, 2.0]},
        },
        str(out),
    )
    assert sorted(os.listdir(out)) == [
        "config.yaml",
        "results.zarr",
        "stability_map.png",
    ]


def test_command_prints_the_summary(small, tmp_path, capsys):
    import yaml

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(small))
    out = tmp_path / "run"
    assert cli.main(["run", str(path), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "converged" in printed and "diverged" in printed
    # 0.1, 0.2, ..., 1.2: every start converges up to 0.9; 1.0 cycles.
    assert "from every start: 0.9 (the next, 1, does not)" in printed
    assert str(out) in printed and "Wall time" in printed


def test_default_run_end_to_end(tmp_path):
    """`dynamics run` as a user types it: the built-in default, in a real process."""
    result = subprocess.run(
        [sys.executable, "-m", "dynamics", "run", "-o", "default"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "default"
    for name in (
        "stability_map.png",
        "cost_tangent.png",
        "descent_path.png",
        "results.zarr",
        "config.yaml",
    ):
        assert (out / name).exists()
    ds = dynamics.load(str(out))
    assert ds["regime"].shape == (240, 161)
    # The map's boundaries, to within one grid cell (0.005 in lr).
    rates = ds["optimizer.learning_rate"].values
    converged = (ds["regime"] == dynamics.Regime.CONVERGED).all("start.w").values
    shoots = ds["overshoot"].sel({"start.w": -2.0}).values
    cell = rates[1] - rates[0]
    assert abs(rates[converged][-1] - 1.0) <= cell
    assert abs(rates[~converged][0] - 1.0) <= cell
    assert abs(rates[shoots][0] - 0.5) <= cell
    assert abs(rates[converged & ~shoots][-1] - 0.5) <= cell
    assert "Largest learning rate that converges from every start" in result.stdout
    assert np.all(ds["regime"].sel({"start.w": 2.0}) == dynamics.Regime.CONVERGED)


def test_force_replaces_only_earlier_runs(small, tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(dynamics.ConfigError, match="not a dynamics run"):
        dynamics.run(small, str(precious), force=True)
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert sorted(os.listdir(tmp_path)) == ["thesis"]


def test_the_working_folder_is_never_replaced(small, tmp_path, monkeypatch):
    dynamics.run(small, str(tmp_path / "run"))
    monkeypatch.chdir(tmp_path / "run")
    with pytest.raises(dynamics.ConfigError, match="working folder"):
        dynamics.run(small, ".", force=True)
    assert (tmp_path / "run" / "results.zarr").is_dir()


def test_an_output_filled_during_the_run_is_left_alone(small, tmp_path):
    out = tmp_path / "run"

    def meddle(done, total):
        (out / "notes.txt").write_text("mine")

    with pytest.raises(dynamics.ConfigError, match="left alone; this run is in"):
        dynamics.run(small, str(out), progress=meddle)
    assert (out / "notes.txt").read_text() == "mine"
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("run.")]
    assert len(kept) == 1 and (kept[0] / "results.zarr").is_dir()


def test_two_runs_cannot_take_the_same_output(small, tmp_path):
    out = tmp_path / "run"

    def second_run(done, total):
        with pytest.raises(
            dynamics.ConfigError, match="is being written by another run right now"
        ):
            dynamics.run(small, str(out))

    dynamics.run(small, str(out), progress=second_run)
    assert (out / "results.zarr").is_dir()


def test_a_config_without_a_sweep_writes_all_its_figures(seed, tmp_path):
    out = tmp_path / "single"
    ds = dynamics.run(seed, str(out))
    assert ds["regime"].shape == ()
    for name in ("stability_map.png", "cost_tangent.png", "descent_path.png"):
        assert (out / name).exists()


def test_figures_survive_a_loss_that_is_infinite_from_the_start(tmp_path):
    out = tmp_path / "inf"
    ds = dynamics.run(
        {
            "objective": {"expr": "1 / w"},
            "start": {"w": 0.0},
            "optimizer": {"learning_rate": 0.1},
            "steps": 20,
        },
        str(out),
    )
    assert int(ds["regime"]) == dynamics.Regime.DIVERGED
    assert int(ds["diverged_at"]) == 0
    assert (out / "descent_path.png").exists()


def test_a_bad_figure_format_is_refused_before_any_work(small, tmp_path):
    with pytest.raises(dynamics.ConfigError, match="jpg"):
        dynamics.run(small, str(tmp_path / "run"), figure_format="jpg")
    assert not (tmp_path / "run").exists()


def test_a_figure_that_cannot_be_drawn_is_a_warning_and_the_results_stay(
    seed, tmp_path
):
    # Learning rates up to 1e300 defeat matplotlib's log axis; the run is data.
    seed.update(dtype="float64")
    seed["sweep"] = {
        "optimizer.learning_rate": {"logspace": [0, 300], "num": 8},
        "start.w": [0.0, 1.0],
    }
    out = tmp_path / "run"
    from dynamics.api import FigureWarning

    with pytest.warns(FigureWarning) as caught:
        ds = dynamics.run(seed, str(out))
    assert "stability_map.png was not drawn" in str(caught[0].message)
    assert (out / "results.zarr").exists() and (out / "config.yaml").exists()
    assert (ds["regime"].values[1:] == 2).all()


def test_a_sweep_narrower_than_the_dtype_warns(seed):
    seed["sweep"] = {
        "optimizer.learning_rate": {"linspace": [0.99999995, 1.00000005], "num": 16}
    }
    with pytest.warns(UserWarning, match="set dtype: float64"):
        dynamics.run(seed)
