"""Results that survive a kill: chunk by chunk, done marks, resume, provenance.

A real `dynamics run` process is killed (SIGKILL, SIGINT, SIGTERM) in the
middle of a sweep; the store it leaves must open with every finished chunk
intact and none half-written, and running the same command again must give
exactly the uninterrupted result.
"""

import errno
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
import yaml
import zarr
from PIL import Image

from dynamics import api, cli, engine, errors, store
from dynamics.errors import ConfigError, Interrupted

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "seed_quadratic.yaml")
# 60 × 40 = 2400 runs in 10 chunks of 256 (the last one 96).
SWEEP = [
    "sweep.optimizer.learning_rate.num=60",
    "sweep.start.w.num=40",
    "chunk_size=256",
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, flat per run as the store keeps it."""
    out = str(tmp_path_factory.mktemp("reference") / "run")
    return api.run(CONFIG, out, overrides=SWEEP).load()


def _start(out, *extra, fault=None):
    env = dict(os.environ)
    if fault is not None:
        env["DYNAMICS_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "dynamics", "run", CONFIG, *SWEEP, "-o", out, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(process, text, seconds=120):
    """Reads the process's stderr until a line holds ``text``."""
    deadline = time.monotonic() + seconds
    lines = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if text in line:
            return
    process.kill()
    pytest.fail(f"never saw {text!r}; stderr: {''.join(lines)}")


def _stop(process, signal_number):
    """Sends the signal, waits for the end; the rest of stderr."""
    process.send_signal(signal_number)
    _, err = process.communicate(timeout=60)
    return err


def _chunks(out):
    return os.path.join(store.partial_path(out), store.CHUNKS)


def _assert_same(ds, reference):
    assert set(ds.data_vars) == set(reference.data_vars)
    for name in reference.variables:
        np.testing.assert_array_equal(ds[name].values, reference[name].values, name)


def test_sigkill_between_a_chunks_data_and_its_mark_loses_nothing(tmp_path, reference):
    out = str(tmp_path / "run")
    process = _start(out, fault="pause-before-mark:4")
    _wait_for(process, "chunk 4 written, not marked")
    _stop(process, signal.SIGKILL)

    # The store opens as it is, in xarray, without help, and says what made it.
    partial = xr.open_zarr(_chunks(out))
    assert partial.attrs["config_hash"] == reference.attrs["config_hash"]
    assert partial.attrs["jax_version"] == reference.attrs["jax_version"]
    assert partial.attrs["command"].startswith(f"dynamics run {CONFIG} ")
    done = partial["done"].values
    assert done.tolist() == [1, 1, 1, 1] + [0] * 6  # chunk 4 is not counted
    flat = {
        name: reference[name].values.reshape(-1) for name in ("regime", "final_loss")
    }
    for number in range(4):
        runs = slice(256 * number, 256 * (number + 1))
        for name, values in flat.items():
            np.testing.assert_array_equal(partial[name].values[runs], values[runs])
    with pytest.raises(ConfigError, match=r"stopped with 4 of 10 chunks"):
        api.load(out)

    with pytest.warns(api.ResumeNotice, match="4 of 10 chunks were done"):
        ds = api.run(CONFIG, out, overrides=SWEEP)
    _assert_same(ds, reference)
    assert ds.attrs["resumed"] == 1
    assert not os.path.exists(store.partial_path(out))


def test_sigkill_at_any_instant_leaves_finished_chunks_intact(tmp_path, reference):
    out = str(tmp_path / "run")
    # Long runs, so that the kill lands while chunks are still being computed.
    process = _start(out, fault="slow:0.2")
    chunks = _chunks(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if os.path.isdir(chunks) and (store.ChunkStore(chunks).marks() >= 0).sum() >= 2:
            break
        time.sleep(0.05)
    _stop(process, signal.SIGKILL)

    marks = store.ChunkStore(chunks).marks()
    finished = np.flatnonzero(marks >= 0)
    assert 2 <= len(finished) < 10
    partial = xr.open_zarr(chunks)
    regime = reference["regime"].values.reshape(-1)
    for number in finished:
        runs = slice(256 * number, 256 * (number + 1))
        np.testing.assert_array_equal(partial["regime"].values[runs], regime[runs])

    with pytest.warns(api.ResumeNotice):
        ds = api.run(CONFIG, out, overrides=SWEEP)
    _assert_same(ds, reference)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_cleanly_and_say_how_to_resume(tmp_path, stop):
    out = str(tmp_path / "run")
    process = _start(out, fault="pause-before-mark:3")
    _wait_for(process, "chunk 3 written, not marked")
    err = _stop(process, stop)
    assert process.returncode == 128 + stop  # 130 for Ctrl-C, 143 for SIGTERM
    assert "Traceback" not in err
    assert (
        f"interrupted; 3 of 10 chunks of runs are saved in {store.partial_path(out)}; "
        "run the same command again to resume"
    ) in err
    assert store.ChunkStore(_chunks(out)).missing() == list(range(3, 10))


@pytest.mark.parametrize("delay", [0.2, 0.5, 1.0, 2.0])
def test_ctrl_c_while_starting_up_ends_cleanly(tmp_path, delay):
    # While JAX loads, a KeyboardInterrupt raised inside its start-up could
    # crash the interpreter or be swallowed by a garbage-collector callback;
    # later, one raised during the first compilation crashed the shutdown.
    out = str(tmp_path / "run")
    process = _start(out)
    time.sleep(delay)
    err = _stop(process, signal.SIGINT)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert err.strip().startswith("dynamics: interrupted;")
    assert not os.path.exists(out)  # nothing finished; at most chunks to resume


def test_a_ctrl_c_ignored_from_the_start_stays_ignored(tmp_path):
    # As for a background job of a script: the shell starts it ignoring SIGINT.
    out = str(tmp_path / "run")
    command = [sys.executable, "-m", "dynamics", "run", CONFIG, *SWEEP, "-o", out]
    process = subprocess.Popen(
        ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command],
        cwd=ROOT,
        env=dict(os.environ, DYNAMICS_FAULT="slow:0.2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(process, "runs (")  # the sweep is under way
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert os.path.isdir(os.path.join(out, "results.zarr"))


def test_a_stop_while_the_store_is_made_leaves_nothing(tmp_path):
    out = str(tmp_path / "run")

    def layout():
        raise KeyboardInterrupt  # Ctrl-C before the store exists

    with pytest.raises(KeyboardInterrupt):
        store.begin(out, "steps: 20\n", layout)
    assert os.listdir(tmp_path) == []


def test_a_swallowed_stop_is_still_obeyed_between_chunks(tmp_path):
    # As if the handler's KeyboardInterrupt had been lost: only the note stays.
    errors.request_stop(signal.SIGTERM)
    try:
        with pytest.raises(Interrupted) as stopped:
            api.run(CONFIG, str(tmp_path / "run"), overrides=SWEEP)
    finally:
        errors.clear_stop()
    assert stopped.value.signal == signal.SIGTERM
    assert "0 of 10 chunks of runs are saved" in str(stopped.value)


def test_a_resume_keeps_the_stored_chunks_and_says_so(tmp_path, reference):
    out = str(tmp_path / "run")

    def stop_after_three(done, total):
        if done >= 3 * 256:
            errors.request_stop(signal.SIGINT)

    try:
        with pytest.raises(Interrupted):
            api.run(CONFIG, out, overrides=SWEEP, progress=stop_after_three)
    finally:
        errors.clear_stop()
    other = [*SWEEP[:2], "chunk_size=128"]  # changes no result, so not refused
    with pytest.warns(api.ResumeNotice) as said:
        ds = api.run(CONFIG, out, overrides=other)
    assert str(said[0].message) == (
        f"resuming the sweep into {out}: 3 of 10 chunks were done before; "
        "computing the rest in the stored sweep's chunks of 256 runs, not 128"
    )
    _assert_same(ds.load(), reference)


def test_another_config_is_refused_saying_what_differs(tmp_path, capsys):
    out = str(tmp_path / "run")
    unfinished = api.begin(api.load_config(CONFIG, SWEEP), out)
    unfinished.chunks.write(0, _piece(unfinished.chunks, 0))
    unfinished.lock.close()  # as if that process had died
    before = _snapshot(store.partial_path(out))

    code = cli.main(["run", CONFIG, *SWEEP, "steps=300", "-o", out])
    assert code == 2
    err = capsys.readouterr().err
    assert err == (
        f"dynamics: error: output '{out}' has an unfinished sweep of another config "
        f"(steps: 200 -> 300), with 1 chunks done in {store.partial_path(out)}; run "
        "that config again to finish it, pass --restart to discard it, or choose "
        "another -o\n"
    )
    assert _snapshot(store.partial_path(out)) == before  # nothing touched

    # A name or a figure setting does not change the results: that resumes.
    with pytest.warns(api.ResumeNotice, match="1 of 10 chunks were done"):
        same = api.begin(
            api.load_config(CONFIG, [*SWEEP, "name=other", "figures.dpi=90"]), out
        )
    assert same.resumed == 1
    # While that one lives, a second run into the same output is refused.
    with pytest.raises(ConfigError, match="is being written by another run"):
        api.begin(api.load_config(CONFIG, SWEEP), out)
    same.lock.close()
    # --restart starts again from nothing.
    again = api.begin(api.load_config(CONFIG, [*SWEEP, "steps=300"]), out, restart=True)
    assert again.resumed == 0 and again.chunks.missing() == list(range(10))
    again.lock.close()


def test_config_hash_ignores_order_comments_and_name_but_not_values():
    a = api.load_config(CONFIG, SWEEP).to_yaml()
    b = api.load_config(CONFIG, [*SWEEP, "name=x"]).to_yaml()
    c = api.load_config(CONFIG, [*SWEEP, "classify.rtol=1e-5"]).to_yaml()
    data = yaml.safe_load(a)
    reordered = "# a comment\n" + yaml.safe_dump(dict(reversed(data.items())))
    assert store.config_hash(a) == store.config_hash(b) == store.config_hash(reordered)
    assert store.config_hash(a) != store.config_hash(c)
    assert store.differences(a, c) == ["classify.rtol: 0.0001 -> 1e-05"]


def test_provenance_is_recorded(reference):
    attrs = reference.attrs
    for key in ("jax", "jaxlib", "numpy", "optax", "xarray", "zarr", "dynamics"):
        assert attrs[f"{key}_version"] not in ("", "unknown"), key
    assert attrs["config_hash"] == store.config_hash(attrs["config"])
    assert attrs["dtype"] == "float32"
    assert attrs["device_count"] >= 1 and attrs["devices"]
    assert attrs["started"] <= attrs["ended"]
    assert attrs["command"] == shlex.join(sys.orig_argv)  # this very process


def test_command_line_is_recorded(tmp_path):
    out = str(tmp_path / "run")
    assert cli.main(["run", CONFIG, "-q", "steps=20", "-o", out, *SWEEP[:2]]) == 0
    command = api.load(out).attrs["command"]
    assert command.startswith("dynamics run ") and "steps=20" in command
    # Each figure carries it too, titled with the run and the figure.
    with Image.open(os.path.join(out, "stability_map.png")) as image:
        assert image.text["command"] == command
        assert image.text["Title"] == "seed-quadratic: stability_map"


def test_a_large_map_is_read_only_where_it_is_sliced(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "TILE", 1000)
    ds = xr.Dataset(
        {
            "regime": (
                ("a", "b"),
                np.arange(200 * 100, dtype=np.int32).reshape(200, 100),
            )
        },
        coords={"a": np.arange(200), "b": np.arange(100)},
    )
    os.mkdir(tmp_path / "run")
    store.save(ds, str(tmp_path / "run"))
    assert zarr.open_array(str(tmp_path / "run" / store.RESULTS / "regime")).chunks == (
        10,
        100,
    )

    read = []
    original = zarr.storage.LocalStore.get

    async def counting(self, key, *args, **kwargs):
        read.append(key)
        return await original(self, key, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", counting)
    loaded = api.load(str(tmp_path / "run"))
    row = loaded["regime"].isel(a=slice(25, 28)).values
    np.testing.assert_array_equal(row, ds["regime"].values[25:28])
    tiles = [key for key in read if key.startswith("regime/") and "." not in key[7:8]]
    assert tiles == ["regime/2.0"]  # one tile of twenty


def _piece(chunks, number):
    size = min(chunks.chunk, chunks.runs - number * chunks.chunk)
    return {
        name: np.zeros((size, *array.shape[1:]), array.dtype)
        for name, array in chunks.group.arrays()
        if name != "done"
    }


def _snapshot(folder):
    found = {}
    for where, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(where, name)
            with open(path, "rb") as handle:
                found[path] = handle.read()
    return found


def test_summary_of_a_stopped_sweep_counts_what_is_done(tmp_path, reference, capsys):
    out = str(tmp_path / "run")
    unfinished = api.begin(api.load_config(CONFIG, SWEEP), out)
    regime = reference["regime"].values.reshape(-1)
    for number in (0, 1, 2):
        piece = _piece(unfinished.chunks, number)
        piece["regime"] = regime[256 * number : 256 * (number + 1)]
        unfinished.chunks.write(number, piece)
    unfinished.lock.close()

    assert cli.main(["summary", out, "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["complete"] is False
    assert table["counts"]["not_run"] == 2400 - 3 * 256
    assert table["counts"]["converged"] == int(np.sum(regime[: 3 * 256] == 0))
    assert cli.main(["summary", out]) == 0
    assert "1,632 of 2,400 runs have not run yet" in capsys.readouterr().out


def test_summary_and_report_of_a_finished_run(tmp_path, reference, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["run", CONFIG, "-q", *SWEEP, "-o", out, "--report"]) == 0
    assert os.path.getsize(os.path.join(out, "report.pdf")) > 10_000
    assert cli.main(["summary", out, "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["complete"] is True and table["total"] == 2400
    assert table["counts"]["converged"] == int(np.sum(reference["regime"].values == 0))
    # An existing report is kept unless --force.
    assert cli.main(["report", out]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert cli.main(["report", out, "--force", "-q"]) == 0


def _stopped_after(out, chunks):
    """A sweep into ``out`` stopped with ``chunks`` done, as a killed run leaves it."""
    exp = api.load_config(CONFIG, SWEEP)
    unfinished = api.begin(exp, out)
    engine.simulate(
        exp,
        chunk=unfinished.chunks.chunk,
        only=chunks,
        sink=unfinished.chunks.write,
    )
    unfinished.release()
    return _chunks(out)


def test_damaged_chunks_are_found_and_computed_again(tmp_path, reference):
    out = str(tmp_path / "run")
    chunks = _stopped_after(out, [0, 1, 2, 3])
    os.remove(os.path.join(chunks, "final_loss", "1"))  # a file lost
    with open(os.path.join(chunks, "regime", "2"), "wb"):
        pass  # a file cut short
    with open(os.path.join(chunks, "done", "3"), "wb") as handle:
        handle.write(b"garbage")  # a mark that cannot be read
    with (
        pytest.warns(store.DamageWarning, match=r"had 2 damaged chunks \(1, 2\)"),
        pytest.warns(api.ResumeNotice, match="1 of 10 chunks were done"),
    ):
        ds = api.run(CONFIG, out, overrides=SWEEP)
    _assert_same(ds, reference)


def test_a_full_disk_stops_with_a_message_and_the_sweep_resumes(
    tmp_path, reference, monkeypatch
):
    out = str(tmp_path / "run")
    write = store.ChunkStore.write

    def full(self, number, piece, process=0):
        if number == 3:
            path = os.path.join(self.path, "final_loss", "3")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        write(self, number, piece, process)

    monkeypatch.setattr(store.ChunkStore, "write", full)
    with pytest.raises(ConfigError) as stopped:
        api.run(CONFIG, out, overrides=SWEEP)
    partial = store.partial_path(out)
    assert str(stopped.value) == (
        f"cannot write {partial}/chunks.zarr/final_loss/3: No space left on device; "
        f"3 of 10 chunks of runs are saved in {partial}; run the same command "
        "again to resume once the disk has room (or is writable) again"
    )
    assert xr.open_zarr(_chunks(out))["done"].values.tolist() == [1, 1, 1] + [0] * 7

    monkeypatch.setattr(store.ChunkStore, "write", write)
    with pytest.warns(api.ResumeNotice):
        _assert_same(api.run(CONFIG, out, overrides=SWEEP), reference)


def test_ctrl_c_while_the_results_are_written_keeps_the_chunks(
    tmp_path, reference, monkeypatch
):
    out = str(tmp_path / "run")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "write_figures", interrupted)
    with pytest.raises(Interrupted, match="10 of 10 chunks of runs are saved"):
        api.run(CONFIG, out, overrides=SWEEP)
    monkeypatch.undo()
    with pytest.warns(api.ResumeNotice, match="10 of 10 .* writing the results"):
        _assert_same(api.run(CONFIG, out, overrides=SWEEP), reference)


def test_force_never_deletes_files_dynamics_did_not_write(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", CONFIG, "-q", *SWEEP, "steps=20", "-o", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    args = ["run", CONFIG, "-q", *SWEEP, "-o", str(out), "--force"]
    assert cli.main(args) == 2
    assert capsys.readouterr().err == (
        f"dynamics: error: output '{out}' holds files dynamics did not write "
        "(notes.txt), which --force would delete with the earlier run; move them "
        "out first, or choose another -o\n"
    )
    assert (out / "notes.txt").read_text() == "mine"
