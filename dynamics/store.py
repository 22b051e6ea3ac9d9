"""Run directories on disk: the results store and the figures beside it.

A run directory holds ``results.zarr`` (the Dataset, in Zarr, which xarray
opens directly), ``config.yaml`` (the checked config) and the figures. It is
written under a temporary name beside its destination and renamed into place
when complete, so an existing run is never half-replaced and is replaced only
when asked.
"""

import contextlib
import os
import shutil
import tempfile
from contextlib import contextmanager

import numpy as np
import xarray as xr
import zarr

from dynamics.errors import ConfigError

RESULTS = "results.zarr"


def check_writable(out: str, force: bool) -> None:
    """Refuses, before any work, an output that cannot or must not be written.

    An existing folder is replaced only with ``force``, and only when it is an
    earlier run (it holds ``results.zarr``) or empty: never the working folder
    or any other folder of the user's.
    """
    if not out or not out.strip():
        raise ConfigError("the output path is empty; give a folder with -o")
    path = os.path.abspath(out)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ConfigError(
                f"output '{out}' exists and is not a folder; choose another -o"
            )
        if not force:
            raise ConfigError(
                f"output '{out}' already exists; choose another -o, "
                "or pass --force to replace that earlier run"
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
    parent = os.path.dirname(path)
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
    # Zarr format 2 with consolidated metadata: every xarray and zarr reader
    # opens it without a warning, `xarray.open_zarr(path)` included.
    ds.to_zarr(path, mode="w-", consolidated=True, zarr_format=2)
    return path


def load(out: str) -> xr.Dataset:
    """Opens the results of a run directory (or a ``results.zarr`` path).

    The variables are read lazily, so a large sweep can be sliced before
    anything is read from disk.
    """
    path = out if out.rstrip("/").endswith(".zarr") else os.path.join(out, RESULTS)
    if not os.path.isdir(path):
        raise ConfigError(
            f"'{out}' holds no results ({RESULTS} is missing); "
            "give the folder a `dynamics run -o` wrote"
        )
    ds = xr.open_dataset(path, engine="zarr", chunks=None)
    attrs = ds["regime"].attrs
    if "flag_values" in attrs:
        attrs["flag_values"] = np.asarray(attrs["flag_values"], dtype=np.int8)
    return ds


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


class ChunkStore:
    """The per-run results of a sweep, chunk by chunk, on a shared file system.

    A Zarr group with one flat array per result (the run axis first, cut into
    the engine's chunks, so that no two chunks share a file) and a ``done``
    array with one mark per chunk: the index of the process that wrote it, or
    -1. Several processes, on one host or many, write their chunks into one
    store at once; a chunk counts only once its mark is set, after its data.
    """

    def __init__(self, path: str):
        self.path = path
        self.group = zarr.open_group(path, mode="r+")
        self.chunk = int(self.group.attrs["chunk"])

    @classmethod
    def create(cls, path: str, runs: int, chunk: int, arrays: dict) -> "ChunkStore":
        """A new, empty store (replacing any at ``path``).

        ``arrays`` maps each result's name to an object with the ``shape`` (after
        the run axis) and ``dtype`` of one run's value.
        """
        shutil.rmtree(path, ignore_errors=True)
        group = zarr.open_group(path, mode="w", zarr_format=3)
        group.attrs.update({"chunk": chunk, "runs": runs})
        for name, spec in arrays.items():
            group.create_array(
                name,
                shape=(runs, *spec.shape),
                chunks=(chunk, *spec.shape),
                dtype=spec.dtype,
            )
        count = -(-runs // chunk)
        group.create_array(
            "done", shape=(count,), chunks=(1,), dtype="i4", fill_value=-1
        )
        return cls(path)

    def write(self, number: int, piece: dict, process: int = 0) -> None:
        """Stores chunk ``number``'s results, then marks it done by ``process``."""
        begin = number * self.chunk
        for name, value in piece.items():
            self.group[name][begin : begin + len(value)] = value
        self.group["done"][number] = process

    def marks(self) -> np.ndarray:
        """Per chunk, the process that wrote it, or -1 where none has yet."""
        return self.group["done"][:]

    def read(self) -> dict[str, np.ndarray]:
        """Every result, whole; an error if a chunk is missing."""
        missing = np.flatnonzero(self.marks() < 0)
        if missing.size:
            raise RuntimeError(
                f"{self.path}: chunks {missing.tolist()} were never written"
            )
        return {name: array[:] for name, array in self.group.arrays() if name != "done"}
