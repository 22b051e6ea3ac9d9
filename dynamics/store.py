"""Run directories on disk: the results store and the figures beside it.

A run directory holds ``results.zarr`` (the Dataset, in Zarr, which xarray
opens directly), ``config.yaml`` (the checked config) and the figures.

A sweep is built in a hidden folder beside its destination, ``.NAME.partial``.
Its ``chunks.zarr`` (a :class:`ChunkStore`) takes each chunk of runs as it is
computed: the chunk's data first, then its done mark, each file written under
a temporary name and renamed, so a sweep killed at any instant (SIGKILL
included) leaves a store that opens, with every finished chunk intact and no
half-written one. Running the same config into the same output again computes
only the chunks without a mark. When every chunk is done the results, the
config and the figures are written into the hidden folder, which is renamed
into place: an existing run is never half-replaced, and is replaced only when
asked.
"""

import contextlib
import datetime
import glob
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
import yaml
import zarr

from dynamics.errors import ConfigError

RESULTS = "results.zarr"
CHUNKS = "chunks.zarr"
#: Held (``flock``) by the process building a sweep: a second run into the
#: same output is refused while the first lives, and free once it dies.
LOCK = "lock"
#: Config keys that do not change a run's results: a resumed sweep may differ
#: from the stored one there (it keeps the chunks it was stored in).
UNHASHED = ("name", "figures", "chunk_size")
#: How a stopped sweep is taken up again.
RESUME = "run the same command again to resume"


def check_writable(out: str, force: bool, resuming: bool = False) -> None:
    """Refuses, before any work, an output that cannot or must not be written.

    An existing folder is replaced only with ``force``, and only when it is an
    earlier run (it holds ``results.zarr``) or empty: never the working folder
    or any other folder of the user's. A sweep ``resuming`` into the empty
    folder it reserved needs no ``force``.
    """
    if not out or not out.strip():
        raise ConfigError("the output path is empty; give a folder with -o")
    path = os.path.abspath(out)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ConfigError(
                f"output '{out}' exists and is not a folder; choose another -o"
            )
        earlier_run = os.path.isdir(os.path.join(path, RESULTS))
        if not force and os.listdir(path) and not earlier_run:
            raise ConfigError(
                f"output '{out}' exists and is not a dynamics run (it has no "
                f"{RESULTS}); choose another -o"
            )
        if not force and not (resuming and not os.listdir(path)):
            what = "that earlier run" if earlier_run else "it (it is empty)"
            raise ConfigError(
                f"output '{out}' already exists; choose another -o, "
                f"or pass --force to replace {what}"
            )
        if os.path.commonpath([path, os.getcwd()]) == path:
            raise ConfigError(
                f"output '{out}' holds the working folder; choose a new folder with -o"
            )
        if os.listdir(path) and not os.path.isdir(os.path.join(path, RESULTS)):
            raise ConfigError(
                f"output '{out}' is not a dynamics run (it has no "
                f"{RESULTS}); --force replaces only earlier runs, so "
                "choose another -o"
            )
        foreign = sorted(name for name in os.listdir(path) if not _ours(name))
        if foreign:
            raise ConfigError(
                f"output '{out}' holds files dynamics did not write "
                f"({', '.join(foreign[:4])}{', ...' if len(foreign) > 4 else ''}), "
                "which --force would delete with the earlier run; move them out "
                "first, or choose another -o"
            )
    parent = os.path.dirname(path)
    blocking = parent
    while blocking and not os.path.exists(blocking):
        blocking = os.path.dirname(blocking)
    if blocking and not os.path.isdir(blocking):
        raise ConfigError(
            f"output '{out}': '{blocking}' is a file, not a folder; choose another -o"
        )
    if not os.path.isdir(parent):
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                f"cannot create the folder for output '{out}': {err.strerror}"
            ) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write output '{out}': '{parent}' is not writable")


@contextmanager
def run_directory(out: str, force: bool = False):
    """Reserves ``out``, yields a staging folder, and renames it into place.

    A new ``out`` is created (empty) before any work, so two runs cannot both
    take it. Nothing is left behind if the body raises. An existing run is
    replaced only with ``force``, and only once the new one is complete; an
    output that someone else filled in the meantime is never replaced: the
    new run is then kept beside it, and the error says where.
    """
    check_writable(out, force)
    path = os.path.abspath(out)
    parent = os.path.dirname(path)
    claimed = False
    if not os.path.exists(path):
        try:
            os.mkdir(path)
            claimed = True
        except FileExistsError:
            raise ConfigError(
                f"output '{out}' was created by someone else just "
                "now; choose another -o"
            ) from None
        except OSError as err:
            raise ConfigError(f"cannot write output '{out}': {err.strerror}") from None
    try:
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", dir=parent)
    except OSError as err:
        if claimed:
            os.rmdir(path)
        raise ConfigError(f"cannot write output '{out}': {err.strerror}") from None
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; a run is not
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if claimed:
            with contextlib.suppress(OSError):
                os.rmdir(path)  # only if still empty
        raise
    _put_in_place(staging, path, out, claimed)


#: What a run folder holds: the results, the config, figures, reports, GIFs.
_OURS = (".png", ".svg", ".pdf", ".gif", ".html")


def _ours(name):
    return name in (RESULTS, "config.yaml") or (
        name.endswith(_OURS) and not name.startswith(".")
    )


def _put_in_place(staging, path, out, claimed):
    if not claimed and os.path.isdir(os.path.join(path, RESULTS)):
        old = tempfile.mkdtemp(
            prefix=f".{os.path.basename(path)}.old.", dir=os.path.dirname(path)
        )
        os.rename(path, os.path.join(old, "run"))
        os.rename(staging, path)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(staging, path)  # onto the empty folder reserved at the start
    except OSError:
        kept = f"{path}.{os.path.basename(staging).rsplit('.', 1)[-1]}"
        os.rename(staging, kept)
        raise ConfigError(
            f"output '{out}' was filled by something else while the "
            f"sweep ran and was left alone; this run is in '{kept}'"
        ) from None


def save(ds: xr.Dataset, folder: str) -> str:
    """Writes the Dataset into ``folder/results.zarr`` and returns that path."""
    path = os.path.join(folder, RESULTS)
    encoding = {
        name: {"chunks": _tiles(variable.shape)}
        for name, variable in ds.variables.items()
        if variable.ndim
    }
    if "regime" in encoding:  # a tile that is lost reads as not run, never converged
        encoding["regime"]["_FillValue"] = -1
    # Zarr format 2 with consolidated metadata: every xarray and zarr reader
    # opens it without a warning, `xarray.open_zarr(path)` included.
    ds.to_zarr(path, mode="w-", consolidated=True, zarr_format=2, encoding=encoding)
    return path


#: Values per stored tile of a result: a slice of a large map reads only the
#: tiles it touches.
TILE = 2**20


def _tiles(shape):
    """Tiles of at most :data:`TILE` values: whole along the last axes, as many
    as fit, and cut along the one before them."""
    tile, room = [], TILE
    for size in reversed(shape):
        take = max(1, min(size, room))
        tile.append(take)
        room = max(1, room // take)
    return tuple(reversed(tile))


def load(out: str) -> xr.Dataset:
    """Opens the results of a run directory (or a ``results.zarr`` path).

    The variables are read lazily, tile by tile (see :data:`TILE`), so a map
    larger than memory can be sliced: only the tiles a slice touches are read.
    """
    out = os.fspath(out)
    path = out if out.rstrip("/").endswith(".zarr") else os.path.join(out, RESULTS)
    chunks = os.path.join(partial_path(out), CHUNKS)
    if not os.path.isdir(path) and os.path.isdir(chunks):
        marks = ChunkStore(chunks).marks()
        raise ConfigError(
            f"'{out}' holds no results yet: its sweep stopped with "
            f"{int(np.sum(marks >= 0))} of {len(marks)} chunks of runs done "
            f"(in {chunks}, which xarray.open_zarr opens); run the same "
            "command again to finish it"
        )
    if not os.path.isdir(path):
        raise ConfigError(
            f"'{out}' holds no results ({RESULTS} is missing); "
            "give the folder a `dynamics run -o` wrote"
        )
    try:
        # regime keeps its integer codes: -1 is "not run", not a missing value.
        masked = {"regime": False}
        ds = xr.open_dataset(path, engine="zarr", chunks=None, mask_and_scale=masked)
    except Exception as err:  # damaged metadata: say where, not a traceback
        raise ConfigError(
            f"'{path}' cannot be read ({type(err).__name__}: {err}); the results "
            "are damaged: run the sweep again"
        ) from None
    attrs = ds["regime"].attrs
    if "flag_values" in attrs:
        attrs["flag_values"] = np.asarray(attrs["flag_values"], dtype=np.int8)
    return ds


def load_unfinished(out: str) -> xr.Dataset:
    """What a stopped sweep into ``out`` has finished, over the whole grid.

    The summary variables (``regime``, ``overshoot``, ``period``, ``chaotic``)
    of every finished chunk; the runs of the other chunks have ``regime`` -1
    (not run). The attribute ``complete`` is False.
    """
    from dynamics.classify import Regime
    from dynamics.config import load_config

    path = os.path.join(partial_path(out), CHUNKS)
    if not os.path.isdir(path):
        raise ConfigError(f"'{out}' has no unfinished sweep")
    chunks = ChunkStore(path)
    exp = load_config(yaml.safe_load(chunks.attrs["config"]))
    marks = chunks.marks()
    finished = np.repeat(marks >= 0, chunks.chunk)[: chunks.runs]
    dims = tuple(axis.key for axis in exp.sweep)
    variables = {}
    for name, blank in (("regime", Regime.NOT_RUN), ("overshoot", False),
                        ("period", 0), ("chaotic", False)):  # fmt: skip
        if name in chunks.group:
            values = chunks.group[name][:]
            values[~finished] = blank
            variables[name] = (dims, values.reshape(exp.shape))
    coords = {
        axis.key: (axis.key, axis.values, {"scale": axis.scale}) for axis in exp.sweep
    }
    attrs = {
        key: value
        for key, value in chunks.attrs.items()
        if key not in ("chunk", "runs")
    }
    attrs |= {
        "name": exp.name,
        "complete": False,
        "chunks_done": int(np.sum(marks >= 0)),
        "chunks": len(marks),
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


class ChunkStore:
    """The per-run results of a sweep, chunk by chunk.

    A Zarr group with one flat array per result (the run axis first, cut into
    the sweep's chunks, so that no two chunks share a file) and a ``done``
    array with one mark per chunk: 1 + the index of the process that wrote
    it, or 0. A chunk counts only once its mark is set, after its data; Zarr writes
    each file under a temporary name and renames it, so a killed writer leaves
    no torn file. Several processes, on one host or many, may write their
    chunks into one store at once. ``xarray.open_zarr`` opens it directly
    (dimension ``run``, and ``chunk`` for the marks).
    """

    def __init__(self, path: str):
        self.path = path
        self.group = zarr.open_group(path, mode="r+")
        self.chunk = int(self.group.attrs["chunk"])
        self.runs = int(self.group.attrs["runs"])

    @classmethod
    def create(
        cls, path: str, runs: int, chunk: int, arrays: dict, attrs: dict | None = None
    ) -> "ChunkStore":
        """A new, empty store (replacing any at ``path``).

        ``arrays`` maps each result's name to an object with the ``shape`` (after
        the run axis) and ``dtype`` of one run's value; ``attrs`` are kept with it.
        """
        shutil.rmtree(path, ignore_errors=True)
        # Made whole under another name, then renamed: a store at ``path``
        # always has every array.
        making = f"{path}.making"
        shutil.rmtree(making, ignore_errors=True)
        # Zarr format 2, dimension names as xarray writes them, metadata
        # consolidated: xarray.open_zarr reads it without a warning.
        group = zarr.open_group(making, mode="w", zarr_format=2)
        group.attrs.update({**(attrs or {}), "chunk": chunk, "runs": runs})
        for name, spec in arrays.items():
            inner = _INNER.get(
                name, tuple(f"{name}_{i}" for i in range(len(spec.shape)))
            )
            group.create_array(
                name,
                shape=(runs, *spec.shape),
                chunks=(chunk, *spec.shape),
                dtype=spec.dtype,
                # Runs not yet done: regime -1 (not run), which xarray reads as
                # missing; elsewhere no fill value, so that xarray masks nothing.
                fill_value=-1 if name == "regime" else None,
                attributes={"_ARRAY_DIMENSIONS": ["run", *inner[: len(spec.shape)]]},
            )
        count = -(-runs // chunk)
        group.create_array(
            "done",
            shape=(count,),
            chunks=(1,),
            dtype="i4",
            fill_value=None,  # reads as 0: not done
            attributes={
                "_ARRAY_DIMENSIONS": ["chunk"],
                "long_name": "1 + the index of the process that wrote the "
                "chunk, or 0 while it is not done",
            },
        )
        zarr.consolidate_metadata(making)
        os.rename(making, path)
        return cls(path)

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    def write(self, number: int, piece: dict, process: int = 0) -> None:
        """Stores chunk ``number``'s results, then marks it done by ``process``."""
        begin = number * self.chunk
        _fault("data", number)
        # Every chunk gets its files, even one of zeros, so that a file missing
        # later is damage that :meth:`check` sees, not a chunk of zeros.
        with zarr.config.set({"array.write_empty_chunks": True}):
            for name, value in piece.items():
                self.group[name][begin : begin + len(value)] = value
            _fault("mark", number)
            self.group["done"][number] = process + 1

    def marks(self) -> np.ndarray:
        """Per chunk, the process that wrote it, or -1 where none has yet (or
        where its mark cannot be read)."""
        done = self.group["done"]
        try:
            return done[:] - 1
        except Exception:  # a damaged mark: read them one by one
            return np.array([self._mark(done, i) for i in range(done.shape[0])])

    @staticmethod
    def _mark(done, number):
        try:
            return int(done[number]) - 1
        except Exception:
            return -1

    def missing(self) -> list[int]:
        """The numbers of the chunks not yet done."""
        return np.flatnonzero(self.marks() < 0).tolist()

    def check(self) -> list[int]:
        """Unmarks every marked chunk with a result file missing or unreadable,
        so that it is computed again; returns their numbers."""
        marks = self.marks()
        present = {}
        for name, array in self.group.arrays():
            if name != "done":
                folder = os.path.join(self.path, name)
                present[name] = (array, set(os.listdir(folder)), array.ndim)
        damaged = []
        for number in np.flatnonzero(marks >= 0).tolist():
            begin = number * self.chunk
            for array, files, ndim in present.values():
                key = ".".join([str(number)] + ["0"] * (ndim - 1))
                try:
                    if key not in files:
                        raise FileNotFoundError(key)
                    array[begin : begin + self.chunk]
                except Exception:
                    damaged.append(number)
                    break
        if damaged:
            with zarr.config.set({"array.write_empty_chunks": True}):
                for number in damaged:
                    self.group["done"][number] = 0
        return damaged

    def read(self) -> dict[str, np.ndarray]:
        """Every result, whole; an error if a chunk is missing."""
        missing = self.missing()
        if missing:
            raise RuntimeError(f"{self.path}: chunks {missing} were never written")
        return {name: array[:] for name, array in self.group.arrays() if name != "done"}


#: Names of the inner dimensions of the stored results that have them.
_INNER = {"final": ("parameter",), "orbit": ("orbit_step",)}


def _fault(stage, number):
    """Fault injection for the tests of a killed sweep, from the environment.

    ``DYNAMICS_FAULT=pause-before-mark:N``: the writer of chunk N says so on
    stderr after its data and waits, unmarked, to be killed.
    ``DYNAMICS_FAULT=slow:S``: every chunk's writer waits S seconds, half
    before its data and half before its mark, so that a kill at a random
    instant lands in either.
    """
    fault = os.environ.get("DYNAMICS_FAULT", "")
    if not fault:
        return
    import sys
    import time

    kind, _, value = fault.partition(":")
    if kind == "slow":
        time.sleep(float(value) / 2)
    elif kind == "pause-before-mark" and stage == "mark" and int(value) == number:
        print(f"dynamics: fault: chunk {number} written, not marked", file=sys.stderr)
        sys.stderr.flush()
        while True:
            time.sleep(1)


def partial_path(out: str) -> str:
    """Where the sweep for ``out`` is built: ``.NAME.partial`` beside it."""
    path = os.path.abspath(out)
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.partial")


def config_hash(config_yaml: str) -> str:
    """The SHA-256 of a checked config's normalized form, without :data:`UNHASHED`.

    Normalized: parsed, every default filled in (the checked config has them),
    keys sorted, written as JSON; so key order, comments and spelling of the
    numbers do not count, and a name or a figure setting does not either.
    """
    data = yaml.safe_load(config_yaml)
    for key in UNHASHED:
        data.pop(key, None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def differences(old_yaml: str, new_yaml: str, limit: int = 4) -> list[str]:
    """The dotted keys whose values differ between two checked configs, as
    ``key: old -> new``, at most ``limit`` of them and then a count."""
    found = []

    def walk(old, new, path):
        if isinstance(old, dict) and isinstance(new, dict):
            for key in sorted(set(old) | set(new), key=str):
                if path == () and key in UNHASHED:
                    continue
                walk(old.get(key), new.get(key), (*path, str(key)))
        elif old != new:
            found.append(f"{'.'.join(path)}: {_short(old)} -> {_short(new)}")

    walk(yaml.safe_load(old_yaml), yaml.safe_load(new_yaml), ())
    if len(found) > limit:
        found = found[:limit] + [f"and {len(found) - limit} more"]
    return found


def _short(value):
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class Unfinished:
    """A sweep under way in its hidden folder (see :func:`begin`).

    Attributes:
      out: the destination, as given.
      folder: the hidden folder it is built in.
      chunks: its :class:`ChunkStore`.
      resumed: how many chunks were already done when this process took it up.
    """

    out: str
    folder: str
    chunks: ChunkStore
    resumed: int
    lock: Any = None

    def finish(self, write) -> None:
        """Calls ``write(folder)`` to write the results and figures beside the
        finished chunks, then puts the folder in place of ``out``."""
        _clear(self.folder)  # what an attempt stopped while writing left
        write(self.folder)
        shutil.rmtree(os.path.join(self.folder, CHUNKS))
        os.remove(os.path.join(self.folder, LOCK))
        path = os.path.abspath(self.out)
        replacing = os.path.isdir(os.path.join(path, RESULTS))
        try:
            _put_in_place(self.folder, path, self.out, claimed=not replacing)
        finally:
            self.release()

    def release(self) -> None:
        """Lets go of the lock: the sweep may be taken up by another run."""
        if self.lock is not None:
            self.lock.close()

    def stopped(self) -> str:
        """What to tell the user when the sweep stops before its end."""
        done = int(np.sum(self.chunks.marks() >= 0))
        total = len(self.chunks.marks())
        return f"{done} of {total} chunks of runs are saved in {self.folder}; {RESUME}"


def begin(
    out: str,
    config_yaml: str,
    layout,
    *,
    force: bool = False,
    restart: bool = False,
    attrs: dict | None = None,
    check=None,
) -> Unfinished:
    """Reserves ``out`` and opens the sweep's hidden folder, resuming if it can.

    A hidden folder left by a stopped sweep of the same config (by
    :func:`config_hash`) is taken up where it stopped; one of another config is
    refused, saying what differs, unless ``restart`` discards it. Otherwise a
    new store is made: ``layout()`` gives ``(runs, chunk, arrays)`` for
    :meth:`ChunkStore.create`, and ``attrs`` are stored with it. ``check()``,
    if given, is called once the output is known to be writable and before
    anything is made: it may refuse the sweep (say, too big for the disk).
    """
    folder = partial_path(out)
    lock = _lock(folder, out) if os.path.isdir(folder) else None
    try:
        return _take_up(
            out, folder, config_yaml, layout, force, restart, attrs, lock, check
        )
    except BaseException:
        if lock is not None:
            lock.close()
        raise


def _take_up(out, folder, config_yaml, layout, force, restart, attrs, lock, check):
    chunks_path = os.path.join(folder, CHUNKS)
    digest = config_hash(config_yaml)
    if os.path.isdir(chunks_path) and not restart:
        chunks = _reopen(chunks_path, out)
        stored = chunks.attrs.get("config_hash")
        if stored != digest:
            changed = differences(chunks.attrs.get("config", "{}"), config_yaml)
            done = int(np.sum(chunks.marks() >= 0))
            raise ConfigError(
                f"output '{out}' has an unfinished sweep of another config "
                f"({'; '.join(changed) or 'a different config'}), with {done} "
                f"chunks done in {folder}; run that config again to finish it, "
                "pass --restart to discard it, or choose another -o"
            )
        check_writable(out, force, resuming=True)
        if check is not None:
            check()
        _claim(out)
        damaged = chunks.check()
        if damaged:
            import warnings

            warnings.warn(
                f"the stopped sweep in {folder} had {len(damaged)} damaged "
                f"chunk{'s' * (len(damaged) > 1)} ({_numbers(damaged)}); "
                "they are computed again",
                DamageWarning,
                stacklevel=4,
            )
        for leftover in glob.glob(
            os.path.join(chunks_path, "**", "*.partial"), recursive=True
        ):
            os.remove(leftover)  # temporary files of a write that was killed
        done = int(np.sum(chunks.marks() >= 0))
        return Unfinished(out, folder, chunks, done, lock)
    # With --restart, or a store lost from the hidden folder, the empty output
    # that the stopped sweep reserved is ours.
    check_writable(out, force, resuming=lock is not None)
    if check is not None:
        check()
    claimed = not os.path.exists(out)
    _claim(out)
    made = lock is None
    if made:
        try:
            os.mkdir(folder)
        except OSError as err:
            raise ConfigError(f"cannot write output '{out}': {err.strerror}") from None
        lock = _lock(folder, out)
    try:
        _clear(folder, keep=(LOCK,))
        runs, chunk, arrays = layout()
        stamp = {"config": config_yaml, "config_hash": digest, "started": now()}
        attrs = stamp | (attrs or {})
        chunks = ChunkStore.create(chunks_path, runs, chunk, arrays, attrs)
    except BaseException:
        lock.close()
        # Stopped before its store existed, a new sweep leaves nothing behind.
        if made:
            shutil.rmtree(folder, ignore_errors=True)
        if claimed:
            with contextlib.suppress(OSError):
                os.rmdir(out)  # only if still empty
        raise
    return Unfinished(out, folder, chunks, 0, lock)


def _lock(folder, out):
    """Takes the sweep's lock in ``folder``, or says who holds it."""
    import fcntl

    try:
        handle = open(os.path.join(folder, LOCK), "a")  # noqa: SIM115 (held open)
    except OSError as err:
        raise ConfigError(
            f"output '{out}': cannot write in {folder} ({err.strerror}); make it "
            "writable, or choose another -o"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(
            f"output '{out}' is being written by another run right now (its "
            f"sweep in {folder} is locked); wait for that run to end, or "
            "choose another -o"
        ) from None
    return handle


def _clear(folder, keep=(CHUNKS, LOCK)):
    for name in os.listdir(folder):
        if name not in keep:
            _remove(os.path.join(folder, name))


class DamageWarning(UserWarning):
    """Chunks of a stopped sweep were damaged on disk and are computed again."""


def _numbers(numbers, limit=8):
    shown = ", ".join(map(str, numbers[:limit]))
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def _reopen(path, out):
    try:
        chunks = ChunkStore(path)
        chunks.group["done"]  # noqa: B018 (the marks must be there)
        return chunks
    except Exception as err:  # any damage: say where, and how to start again
        raise ConfigError(
            f"output '{out}': the unfinished sweep in {path} cannot be read "
            f"({type(err).__name__}: {err}); pass --restart to start it again"
        ) from None


def _claim(out):
    """Creates ``out``, empty, so that no other run takes it meanwhile."""
    path = os.path.abspath(out)
    if os.path.exists(path):
        return
    try:
        os.mkdir(path)
    except FileExistsError:
        raise ConfigError(
            f"output '{out}' was created by someone else just now; choose another -o"
        ) from None
    except OSError as err:
        raise ConfigError(f"cannot write output '{out}': {err.strerror}") from None


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def now() -> str:
    """The current time in UTC, ISO 8601, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
