"""What a sweep will need, memory and disk, weighed before it starts.

The engine keeps its working memory within a fixed budget by cutting the grid
into chunks, whatever its size; what grows with the grid is the results. They
are held whole once, when the finished chunks are gathered into the Dataset
and written, and they are stored twice on disk for a moment (the chunks, and
``results.zarr``). A sweep whose results cannot fit is refused before any
work, with the figures and what to change.
"""

import math
import os
import shutil
from typing import NamedTuple

import numpy as np

from dynamics.config import Experiment
from dynamics.errors import ConfigError

#: Copies of the results held at once while they are gathered and written.
COPIES = 3
#: Room for figures, the config and the program around the results, in bytes.
OVERHEAD = 256 * 2**20


class Needs(NamedTuple):
    """A sweep's estimated needs, in bytes.

    Attributes:
      per_run: bytes of results per run.
      memory: host memory at the peak, when the results are gathered.
      disk: disk space at the peak, the chunks and the results side by side.
    """

    per_run: int
    memory: int
    disk: int


def needs(exp: Experiment, arrays: dict) -> Needs:
    """What ``exp`` needs, given the per-run ``arrays`` of :func:`engine.outputs`."""
    per_run = sum(
        math.prod(spec.shape) * np.dtype(spec.dtype).itemsize
        for spec in arrays.values()
    )
    per_run += 8 + 4  # the closed-form radius and the basin, added at the end
    results = exp.n_runs * per_run
    return Needs(
        per_run=per_run,
        memory=COPIES * results + OVERHEAD,
        disk=2 * results + OVERHEAD,
    )


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation, or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def available_disk(path: str) -> int | None:
    """Free bytes on the file system that holds (or will hold) ``path``."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def check(exp: Experiment, arrays: dict, out: str) -> Needs:
    """Refuses a sweep whose results would not fit in memory or on disk."""
    need = needs(exp, arrays)
    size = f"{exp.n_runs:,} runs × {need.per_run:,} bytes of results"
    memory = available_memory()
    if memory is not None and need.memory > memory:
        fix = "sweep fewer values (sweep.KEY.num)"
        if exp.config["analysis"]["orbit"]:
            fix += ", or drop analysis.orbit, which keeps a window of values a run"
        raise ConfigError(
            f"the sweep ({size}) needs about {_gib(need.memory)} of memory to "
            f"gather its results, and {_gib(memory)} is available; {fix}"
        )
    disk = available_disk(out)
    if disk is not None and need.disk > disk:
        where = os.path.dirname(os.path.abspath(out))
        raise ConfigError(
            f"the sweep ({size}) needs about {_gib(need.disk)} of disk in "
            f"{where}, and {_gib(disk)} is free; free some space, or choose "
            "-o on another disk"
        )
    return need


def _gib(count):
    return f"{count / 2**30:.1f} GiB"
