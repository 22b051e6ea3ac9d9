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
        "final_loss",
        "max_loss",
        "steps_to_converge",
        "diverged_at",
    }
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
        "results.zarr",
        "stability_map.png",
    ]
    again = dynamics.load(out)
    xr.testing.assert_identical(ds.load(), again.load())
    plain = xr.open_zarr(
        os.path.join(out, "results.zarr"), consolidated=False, chunks=None
    )
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


def test_two_parameter_objective_gets_the_map_only(tmp_path):
    out = tmp_path / "run"
    dynamics.run(
        {
            "objective": {"expr": "x**2 + 3 * y**2"},
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
