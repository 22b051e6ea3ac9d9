"""Run directories on disk: the results store and the figures beside it.

A run directory holds ``results.zarr`` (the Dataset, in Zarr, which xarray
opens directly), ``config.yaml`` (the checked config) and the figures. It is
written under a temporary name beside its destination and renamed into place
when complete, so an existing run is never half-replaced and is replaced only
when asked.
"""

import os
import shutil
import tempfile
from contextlib import contextmanager

import numpy as np
import xarray as xr

from dynamics.errors import ConfigError

RESULTS = "results.zarr"


def check_writable(out: str, force: bool) -> None:
    """Refuses, before any work, an output that exists unless ``force``."""
    if os.path.exists(out) and not force:
        raise ConfigError(
            f"output '{out}' already exists; choose another -o, or pass --force "
            "to replace it"
        )
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"output '{out}' exists and is not a directory")
    parent = os.path.dirname(os.path.abspath(out))
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
    """Yields a fresh folder to write into; renames it to ``out`` on success.

    Nothing is left behind if the body raises. An existing ``out`` is replaced
    only when ``force`` is true, and only after the new one is complete.
    """
    check_writable(out, force)
    parent = os.path.dirname(os.path.abspath(out))
    try:
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", dir=parent)
    except OSError as err:
        raise ConfigError(f"cannot write output '{out}': {err.strerror}") from None
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; a run is not
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if os.path.exists(out):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old.", dir=parent)
        os.rename(out, os.path.join(old, "run"))
    os.rename(staging, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def save(ds: xr.Dataset, folder: str) -> str:
    """Writes the Dataset into ``folder/results.zarr`` and returns that path."""
    path = os.path.join(folder, RESULTS)
    ds.to_zarr(path, mode="w-", consolidated=False)
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
    ds = xr.open_dataset(path, engine="zarr", chunks=None, consolidated=False)
    attrs = ds["regime"].attrs
    if "flag_values" in attrs:
        attrs["flag_values"] = np.asarray(attrs["flag_values"], dtype=np.int8)
    return ds


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
