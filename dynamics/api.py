"""The whole job in one call: config in, Dataset out, results and figures saved."""

import contextlib
import gc
import os
import shlex
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from dynamics import (
    diagrams,
    engine,
    figures,
    objectives,
    resources,
    results,
    sharpness,
    store,
    theory,
    zoom,
)
from dynamics.classify import Regime
from dynamics.config import Experiment, load_config
from dynamics.errors import ConfigError, Interrupted
from dynamics.schema import FIGURE_FORMATS as FORMATS


def run(
    config: Any = None,
    out: str | None = None,
    *,
    overrides: Sequence[str] = (),
    force: bool = False,
    progress: engine.Progress | None = None,
    figure_format: str | Sequence[str] | None = None,
    restart: bool = False,
    command: str | None = None,
) -> xr.Dataset:
    """Runs a sweep and returns its per-run results.

    Args:
      config: a YAML path, a mapping, an :class:`Experiment`, or ``None`` for
        the built-in default (the seed quadratic).
      out: a folder to write ``results.zarr``, ``config.yaml`` and the figures
        into; nothing is written when ``None``. Each chunk of runs is saved as
        it finishes (see :mod:`dynamics.store`): a sweep into ``out`` that was
        stopped, by anything, resumes where it stopped.
      overrides: ``"key=value"`` strings applied to the config first.
      force: replace ``out`` if it holds an earlier run (otherwise an error).
      progress: called as ``progress(done, total)`` after each chunk of runs.
      figure_format: ``"png"``, ``"svg"`` or ``"pdf"``, or a list of them;
        default from the config.
      restart: discard an unfinished sweep into ``out`` instead of resuming
        it (needed when its config differs).
      command: the command line to record (default: this process's).

    Raises:
      ConfigError: a bad config or output, before any work.
      Interrupted: Ctrl-C (or SIGTERM, from the command line) stopped the
        sweep; its message says what is saved and how to resume.

    Returns:
      An ``xarray.Dataset`` with one dimension per sweep key.

    >>> ds = run({"objective": {"expr": "(w - 2)**2 + 1"}, "start": {"w": 0.0},
    ...           "optimizer": {"name": "sgd", "learning_rate": 0.1},
    ...           "sweep": {"optimizer.learning_rate": [0.1, 1.5]}})
    >>> ds["regime"].values.tolist()
    [0, 2]
    """
    exp = load_config(config, overrides)
    zoom.warn_resolution(exp)
    _check_formats(figure_format)
    if out is None:
        return _simulate(exp, progress)
    unfinished = begin(exp, out, force=force, restart=restart, command=command)
    with stopping(unfinished):
        chunks = unfinished.chunks
        engine.simulate(
            exp,
            progress=progress,
            chunk=chunks.chunk,
            only=chunks.missing(),
            sink=chunks.write,
        )
        return finish(exp, unfinished, figure_format=figure_format)


@contextlib.contextmanager
def stopping(unfinished: store.Unfinished):
    """What a sweep that stops early says: how much is saved, and how to go on.

    Ctrl-C (or SIGTERM, from the command line) becomes :class:`Interrupted`; a
    disk that is full or cannot be written, a :class:`ConfigError` that says
    so. Either way the finished chunks stay, and the lock is let go.
    """
    try:
        yield
    except KeyboardInterrupt as err:
        unfinished.release()
        said = f"interrupted; {unfinished.stopped()}"
        raise Interrupted(said, getattr(err, "signal", None)) from None
    except OSError as err:
        unfinished.release()
        where = f" {err.filename}" if err.filename else ""
        raise ConfigError(
            f"cannot write{where}: {err.strerror or err}; {unfinished.stopped()} "
            "once the disk has room (or is writable) again"
        ) from None
    except BaseException:
        unfinished.release()
        raise


def _check_formats(figure_format):
    if figure_format is None:
        return
    given = [figure_format] if isinstance(figure_format, str) else figure_format
    for fmt in given:
        if fmt not in FORMATS:
            raise ConfigError(
                f"figure_format '{fmt}' is not one of: {', '.join(FORMATS)}"
            )


class ResumeNotice(UserWarning):
    """An output held an unfinished sweep of this config; it is being resumed."""


def begin(
    exp: Experiment,
    out: str,
    *,
    force: bool = False,
    restart: bool = False,
    command: str | None = None,
) -> store.Unfinished:
    """Reserves ``out`` and opens (or resumes) the store the sweep's chunks go to."""

    arrays = engine.outputs(exp)

    def layout():
        chunk, _ = engine.chunks(exp)
        return exp.n_runs, chunk, arrays

    unfinished = store.begin(
        out,
        exp.to_yaml(),
        layout,
        force=force,
        restart=restart,
        # The store is an output too: it says what made it, as the results do.
        attrs=results.provenance(exp) | {"command": command or _command()},
        # Before any folder is made: a sweep that cannot fit is refused untouched.
        check=lambda: resources.check(exp, arrays, out),
    )
    if unfinished.resumed:
        total = len(unfinished.chunks.marks())
        rest = (
            "writing the results"
            if unfinished.resumed == total
            else "computing the rest"
        )
        stored, (asked, _) = unfinished.chunks.chunk, engine.chunks(exp)
        if stored != asked:  # chunk_size changes no result, so it may differ
            rest += f" in the stored sweep's chunks of {stored:,} runs, not {asked:,}"
        warnings.warn(
            f"resuming the sweep into {out}: {unfinished.resumed} of {total} "
            f"chunks were done before; {rest}",
            ResumeNotice,
            stacklevel=3,
        )
    return unfinished


def finish(
    exp: Experiment,
    unfinished: store.Unfinished,
    *,
    figure_format: str | None = None,
    attrs: dict | None = None,
) -> xr.Dataset:
    """Builds the run directory from a store whose every chunk is done."""
    stored = unfinished.chunks.attrs
    ds = results.to_dataset(exp, unfinished.chunks.read())
    ds.attrs.update(
        {
            "started": stored["started"],
            "ended": store.now(),
            "command": stored["command"],
            "resumed": int(unfinished.resumed > 0),
        }
        | (attrs or {})
    )
    ds = theory.attach(ds, exp)

    def write(folder):
        _write_run(exp, ds, folder, figure_format)

    unfinished.finish(write)
    return store.load(unfinished.out)


def save_run(
    exp: Experiment,
    results_of,
    out: str,
    *,
    force: bool = False,
    figure_format: str | None = None,
) -> xr.Dataset:
    """Writes a run directory: the results, the config and the figures.

    ``results_of`` is the Dataset, or a function that computes it once the
    output folder is reserved. Returns the Dataset as reopened from disk.
    """
    with store.run_directory(out, force=force) as folder:
        ds = results_of() if callable(results_of) else results_of
        _write_run(exp, ds, folder, figure_format)
    return store.load(out)


def _write_run(exp, ds, folder, figure_format):
    store.save(ds, folder)
    with open(os.path.join(folder, "config.yaml"), "w", encoding="utf-8") as f:
        f.write(exp.to_yaml())
    write_figures(exp, ds, folder, figure_format)


def _simulate(exp, progress):
    started = store.now()
    summary = engine.simulate(exp, progress=progress)
    ds = results.to_dataset(exp, summary, {"started": started, "ended": store.now()})
    return theory.attach(ds, exp)


def _command():
    """This process's command line, as a shell would take it: the
    interpreter and its arguments (a script, ``-m module``, ``-c ...``)."""
    return shlex.join(getattr(sys, "orig_argv", sys.argv))


def write_figures(
    exp: Experiment,
    ds: xr.Dataset,
    folder: str,
    figure_format: str | Sequence[str] | None = None,
) -> list[str]:
    """Draws the run's figures into ``folder``; returns their paths.

    Every sweep gets the stability map; a sweep with oscillating runs, the
    period map; an ``analysis.orbit``, the bifurcation diagram; runs that reach
    more than one minimum, the basin map; a quadratic under gradient descent,
    heavy ball or Nesterov, the map with its closed-form boundary;
    ``analysis.sharpness``, the edge-of-stability figure of the unswept run; a
    one-parameter objective, the cost curve with its tangent and the descent
    path. Sizes, palette and fonts come from the config's ``figures``; each
    file carries the run's provenance (:func:`figure_metadata`).
    """
    formats = figure_format or exp.config["figures"]["format"]
    dpi = exp.config["figures"]["dpi"]
    style = figures.Style.from_config(exp.config)
    description = ds.attrs.get("config", "")
    metadata = figure_metadata(ds)
    analysis = exp.config["analysis"]
    drawn = [("stability_map", lambda: figures.plot_stability_map(ds, style=style))]
    if (ds["regime"] == Regime.OSCILLATING).any():
        drawn.append(("period_map", lambda: diagrams.plot_period_map(ds, style=style)))
    if "orbit" in ds and exp.sweep:
        drawn.append(
            ("bifurcation", lambda: diagrams.plot_bifurcation(ds, style=style))
        )
    if "basin" in ds and ds.sizes.get("minimum", 0) >= 2:
        drawn.append(("basin_map", lambda: diagrams.plot_basin_map(ds, style=style)))
    if analysis["sharpness"]:
        drawn.append(("edge_of_stability", lambda: _edge_of_stability(exp, style)))
    if "theory_radius" in ds:
        drawn.append(
            (
                "theory_overlay",
                lambda: theory.plot_theory_overlay(ds, exp, style=style),
            )
        )
    if objectives.scalar_parameter(exp.config) is not None:
        drawn.append(
            ("cost_tangent", lambda: figures.plot_cost_tangent(exp, style=style))
        )
        drawn.append(
            ("descent_path", lambda: figures.plot_descent_path(exp, style=style))
        )
    paths = []
    for stem, draw in drawn:
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                titled = metadata | {"Title": f"{exp.name}: {stem}"}
                paths += figures.save_all(
                    draw(), folder, stem, formats, dpi, description, metadata=titled
                )
            gc.collect()  # a figure's cycles hold its arrays; free them now
        except (OverflowError, ValueError) as err:
            # Values at the edge of the float range (a learning rate of 1e300)
            # can defeat matplotlib's axes; the results are kept regardless.
            names = [formats] if isinstance(formats, str) else formats
            files = ", ".join(f"{stem}.{fmt}" for fmt in names)
            warnings.warn(f"{files} was not drawn: {err}", FigureWarning, stacklevel=2)
    return paths


#: The provenance attributes a figure's metadata carries (the config goes in
#: its description).
PROVENANCE = (
    "config_hash",
    "started",
    "ended",
    "resumed",
    "command",
    "dtype",
    "device_count",
    "devices",
    "platform",
    "dynamics_version",
    "jax_version",
    "jaxlib_version",
    "numpy_version",
    "optax_version",
    "xarray_version",
    "zarr_version",
)


def figure_metadata(ds: xr.Dataset | Mapping) -> dict[str, str]:
    """The run's provenance (a Dataset's attributes, or such a mapping), as
    text, for a figure file's metadata."""
    attrs = ds.attrs if isinstance(ds, xr.Dataset) else ds
    return {key: str(attrs[key]) for key in PROVENANCE if key in attrs}


class FigureWarning(UserWarning):
    """A figure could not be drawn; the results were saved all the same."""


def _edge_of_stability(exp, style):
    analysis = exp.config["analysis"]
    eos = sharpness.edge_of_stability(
        exp,
        every=analysis["sharpness_every"],
        iterations=analysis["sharpness_iterations"],
    )
    return sharpness.plot_edge_of_stability(eos, style=style)


def load(out: str) -> xr.Dataset:
    """Reopens the results that :func:`run` wrote into ``out``."""
    return store.load(out)
