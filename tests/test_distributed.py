"""One sweep over two processes on 127.0.0.1, through jax.distributed.

Two real `dynamics run` processes join over JAX's coordination service, each
runs its share of the chunks into one store, and the merged run directory
must hold exactly what a single process writes.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from dynamics import api, store

SWEEP = [
    "sweep.optimizer.learning_rate.num=20",
    "sweep.start.w.num=20",
    "chunk_size=64",  # 400 runs: 7 chunks, 4 for process 0 and 3 for process 1
]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NETWORK = [
    "configs/fractal_lr_lr.yaml",
    "steps=20",
    "sweep.optimizer.learning_rate.0.num=6",
    "sweep.optimizer.learning_rate.1.num=6",
    "chunk_size=8",  # 36 runs: 5 chunks, 3 for process 0 and 2 for process 1
]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(out, process, port, *extra, sweep=SWEEP):
    env = dict(os.environ, DYNAMICS_COMPILATION_CACHE="off")
    return subprocess.Popen(
        [
            sys.executable, "-m", "dynamics", "run", "-q", "-o", out, *sweep,
            "--coordinator", f"127.0.0.1:{port}", "--processes", "2",
            "--process-id", str(process), *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _finish(processes):
    """(returncode, stderr) of each process, killing all if one hangs."""
    done = []
    for process in processes:
        try:
            _, err = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            pytest.fail("the two processes did not finish")
        done.append((process.returncode, err))
    return done


@pytest.mark.parametrize("sweep, shares", [(SWEEP, [4, 3]), (NETWORK, [3, 2])])
def test_two_processes_equal_one(tmp_path, sweep, shares):
    # The network's config draws its weights with JAX while it is checked:
    # the processes must join before that.
    out = str(tmp_path / "two")
    port = _free_port()
    processes = [_launch(out, i, port, sweep=sweep) for i in (0, 1)]
    for code, err in _finish(processes):
        assert code == 0, err[-2000:]

    config = os.path.join(ROOT, sweep[0]) if sweep[0].endswith(".yaml") else None
    overrides = sweep[1:] if config else sweep
    single = api.run(config, str(tmp_path / "one"), overrides=overrides)
    merged = store.load(out)
    assert sorted(merged.data_vars) == sorted(single.data_vars)
    for name in single.data_vars:
        a, b = single[name].values, merged[name].values
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
    for name in single.coords:
        np.testing.assert_array_equal(single[name].values, merged[name].values)
    assert merged.attrs["processes"] == 2
    assert list(merged.attrs["chunks_per_process"]) == shares
    # The store the processes shared is gone; the folder is a plain run.
    assert sorted(os.listdir(tmp_path)) == ["one", "two"]
    assert sorted(os.listdir(out)) == sorted(os.listdir(tmp_path / "one"))
    assert isinstance(xr.open_zarr(os.path.join(out, "results.zarr")), xr.Dataset)


def test_processes_given_different_runs_all_stop(tmp_path):
    # Same grid size, other values: merged, this would be silently wrong.
    out = str(tmp_path / "two")
    port = _free_port()
    other = "sweep.optimizer.learning_rate={linspace: [0.01, 3.0], num: 20}"
    processes = [_launch(out, 0, port), _launch(out, 1, port, other)]
    done = _finish(processes)
    assert [code for code, _ in done] == [2, 2]
    assert "process 1 was given another config" in done[0][1]
    assert "this process was given another config" in done[1][1]
    assert all("Traceback" not in err for _, err in done)
    assert not os.path.exists(out)


def test_a_process_whose_config_fails_stops_the_others(tmp_path):
    out = str(tmp_path / "two")
    port = _free_port()
    processes = [_launch(out, 0, port), _launch(out, 1, port, "steps=3")]
    done = _finish(processes)
    assert [code for code, _ in done] == [2, 2]
    assert "process 1 stopped while checking its config" in done[0][1]
    assert "steps: must be at least 8" in done[1][1]
    assert not os.path.exists(out)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--processes", "2", "--process-id", "2"], "--process-id 2 is not one of 0"),
        (["--processes", "0"], "--processes must be at least 1"),
        (["--coordinator", "127.0.0.1"], "is not HOST:PORT"),
        (["--coordinator", "127.0.0.1:99999"], "is not HOST:PORT"),
    ],
)
def test_bad_process_flags(tmp_path, flags, message):
    done = subprocess.run(
        [sys.executable, "-m", "dynamics", "run", "-o", str(tmp_path / "x"), *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not os.path.exists(tmp_path / "x")


def test_several_processes_need_an_output(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dynamics",
            "run",
            "--processes",
            "2",
            "--process-id",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "needs -o" in done.stderr
    assert os.listdir(tmp_path) == []


def test_two_processes_resume_a_sweep_one_process_left(tmp_path):
    out = str(tmp_path / "two")
    env = dict(os.environ, DYNAMICS_FAULT="pause-before-mark:3")
    alone = subprocess.Popen(
        [sys.executable, "-m", "dynamics", "run", "-o", out, *SWEEP],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in alone.stderr:
        if "chunk 3 written, not marked" in line:
            break
    alone.kill()
    alone.communicate(timeout=60)

    port = _free_port()
    processes = [_launch(out, i, port) for i in (0, 1)]
    for code, err in _finish(processes):
        assert code == 0, err[-2000:]
    merged = store.load(out)
    single = api.run(None, str(tmp_path / "one"), overrides=SWEEP)
    for name in single.data_vars:
        a, b = single[name].values, merged[name].values
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
    # Chunks 0-2 were done alone; of the missing 3-6, each process took two.
    assert list(merged.attrs["chunks_per_process"]) == [5, 2]
    assert merged.attrs["resumed"] == 1
