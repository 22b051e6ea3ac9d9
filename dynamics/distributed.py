"""One sweep over several processes or hosts, through ``jax.distributed``.

Every process runs the same command. JAX's coordination service joins them
(:func:`initialize`); each process then runs its share of the chunks the
sweep still lacks (the ``i``-th missing chunk goes to process ``i mod count``)
on its own devices and writes them into the sweep's
:class:`~dynamics.store.ChunkStore` beside the output folder, on a file
system every host sees: the same store a single process writes, so a sweep
stopped on one machine resumes on many, and back. Once every chunk is in,
process 0 writes the run directory exactly as a single process would. The
chunks are the engine's own, so the merged results equal a single-process
run's, value for value. At each step (config, preparation, chunks) the
processes agree (:func:`agree`): one given another config or output, or one
that fails, stops them all rather than leaving the others waiting.

Launch (two hosts; the same on each, with its own ``--process-id``)::

    dynamics run sweep.yaml -o /shared/runs/big \\
        --coordinator host0:1234 --processes 2 --process-id 0

The coordinator, count and index may instead come from the environment
(``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), or,
with ``--distributed`` alone, from a cluster JAX detects itself (Slurm,
Open MPI, Kubernetes).
"""

import hashlib
import os

import jax
import numpy as np

from dynamics import engine, store, zoom
from dynamics.errors import ConfigError

#: How long a process waits for the others to join, in seconds.
JOIN_SECONDS = 600


def settings(coordinator=None, processes=None, process_id=None):
    """The coordinator, process count and index: flags first, then environment.

    Returns ``None`` when nothing asks for more than one process.
    """
    environ = os.environ
    coordinator = coordinator or environ.get("JAX_COORDINATOR_ADDRESS")
    processes = processes if processes is not None else _integer("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _integer("JAX_PROCESS_ID")
    if coordinator is None and processes is None and process_id is None:
        return None
    if coordinator is not None:
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"--coordinator '{coordinator}' is not HOST:PORT with a port "
                "from 1 to 65535 (e.g. host0:12345)"
            )
    if processes is not None and processes < 1:
        raise ConfigError(f"--processes must be at least 1, not {processes}")
    if (
        process_id is not None
        and processes is not None
        and not 0 <= process_id < processes
    ):
        raise ConfigError(
            f"--process-id {process_id} is not one of 0 … {processes - 1} "
            f"(--processes {processes})"
        )
    return {
        "coordinator_address": coordinator,
        "num_processes": processes,
        "process_id": process_id,
    }


def initialize(options: dict | None) -> tuple[int, int]:
    """Joins the processes (unless ``options`` asks for one); ``(index, count)``.

    ``options`` from :func:`settings`; an empty dict lets JAX detect the
    cluster. Must run before anything else touches JAX's devices.
    """
    if options is None or options.get("num_processes") == 1:
        return 0, 1
    try:
        jax.distributed.initialize(**options, initialization_timeout=JOIN_SECONDS)
    except (RuntimeError, ValueError) as err:
        found = "" if any(options.values()) else "no cluster that JAX knows was found; "
        raise ConfigError(
            f"could not join the other processes ({found}{err}); give "
            "--coordinator HOST:PORT, --processes and --process-id (or "
            "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)"
        ) from None
    return jax.process_index(), jax.process_count()


def agree(ok: bool, problem: str, what: str, fingerprint: str = "") -> None:
    """Every process learns whether all went well; each stops on any failure.

    Called by every process at the same point (it is a collective). A process
    whose ``fingerprint`` differs from process 0's was given another run.
    """
    from jax.experimental import multihost_utils

    digest = np.frombuffer(hashlib.sha256(fingerprint.encode()).digest(), np.uint8)
    mine = np.concatenate([[int(ok)], digest]).astype(np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, mine.size)
    index = jax.process_index()
    if not ok:
        raise ConfigError(problem)
    failed = np.flatnonzero(every[:, 0] == 0).tolist()
    if failed:
        raise ConfigError(
            f"process {failed[0]} stopped while {what}; its error is in its own output"
        )
    differ = np.flatnonzero(np.any(every[:, 1:] != every[0, 1:], axis=1)).tolist()
    if differ:
        here = "this process" if index in differ else f"process {differ[0]}"
        raise ConfigError(
            f"{here} was given another config, overrides or -o than process 0; "
            "every process must be given the same"
        )


def run(
    exp,
    out,
    *,
    force=False,
    restart=False,
    progress=None,
    figure_format=None,
    problem=None,
    command=None,
):
    """Runs ``exp`` as this process's share of a multi-process sweep.

    ``problem`` is this process's error with its config, if it had one: the
    others then stop too instead of waiting for it. Returns the Dataset on
    process 0 and ``None`` on the others.
    """
    from jax.experimental import multihost_utils

    from dynamics import api

    index, count = jax.process_index(), jax.process_count()
    path = os.path.abspath(out)
    same = "" if exp is None else f"{exp.to_yaml()}\n{path}\n{force}\n{restart}"
    agree(problem is None, problem or "", "checking its config", same)

    problem = unfinished = None
    if index == 0:
        zoom.warn_resolution(exp)
        try:
            unfinished = api.begin(
                exp, out, force=force, restart=restart, command=command
            )
        except ConfigError as err:
            problem = str(err)
    agree(problem is None, problem or "", "preparing the run")

    chunks = store.ChunkStore(os.path.join(store.partial_path(out), store.CHUNKS))
    missing = chunks.missing()
    # Read before anyone writes: every process must split the same list.
    agree(True, "", "reading the store", ",".join(map(str, missing)))
    try:
        engine.simulate(
            exp,
            progress=progress,
            chunk=chunks.chunk,
            only=missing[index::count],
            sink=lambda number, piece: chunks.write(number, piece, index),
        )
        problem = None
    except Exception as err:  # every process must hear of it, then it is raised
        problem = f"{type(err).__name__}: {err}"
    agree(problem is None, problem or "", "running its chunks")

    ds = None
    try:
        if index == 0:
            shares = np.bincount(chunks.marks(), minlength=count).tolist()
            attrs = {"processes": count, "chunks_per_process": shares}
            ds = api.finish(exp, unfinished, figure_format=figure_format, attrs=attrs)
    finally:
        # Even when process 0 fails to write, the others are let go.
        multihost_utils.sync_global_devices("dynamics: run saved")
    return ds


def _integer(name):
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"environment variable {name}={value!r} is not an integer"
        ) from None
