"""The whole job in one call: config in, Dataset out, results and figures saved."""

import gc
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from dynamics import (
    diagrams,
    engine,
    figures,
    objectives,
    results,
    sharpness,
    store,
    theory,
    zoom,
)
from dynamics.classify import Regime
from dynamics.config import Experiment, load_config
from dynamics.errors import ConfigError
from dynamics.schema import FIGURE_FORMATS as FORMATS


def run(
    config: Any = None,
    out: str | None = None,
    *,
    overrides: Sequence[str] = (),
    force: bool = False,
    progress: engine.Progress | None = None,
    figure_format: str | None = None,
) -> xr.Dataset:
    """Runs a sweep and returns its per-run results.

    Args:
      config: a YAML path, a mapping, an :class:`Experiment`, or ``None`` for
        the built-in default (the seed quadratic).
      out: a folder to write ``results.zarr``, ``config.yaml`` and the figures
        into; nothing is written when ``None``.
      overrides: ``"key=value"`` strings applied to the config first.
      force: replace ``out`` if it exists (otherwise that is an error).
      progress: called as ``progress(done, total)`` after each chunk of runs.
      figure_format: ``"png"``, ``"svg"`` or ``"pdf"``; default from the config.

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
    if figure_format is not None and figure_format not in FORMATS:
        raise ConfigError(
            f"figure_format '{figure_format}' is not one of: {', '.join(FORMATS)}"
        )
    if out is None:
        return _simulate(exp, progress)
    return save_run(
        exp,
        lambda: _simulate(exp, progress),
        out,
        force=force,
        figure_format=figure_format,
    )


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
        store.save(ds, folder)
        with open(os.path.join(folder, "config.yaml"), "w", encoding="utf-8") as f:
            f.write(exp.to_yaml())
        write_figures(exp, ds, folder, figure_format)
    return store.load(out)


def _simulate(exp, progress):
    started = time.perf_counter()
    summary = engine.simulate(exp, progress=progress)
    elapsed = round(time.perf_counter() - started, 3)
    ds = results.to_dataset(exp, summary, {"wall_seconds": elapsed})
    return theory.attach(ds, exp)


def write_figures(
    exp: Experiment, ds: xr.Dataset, folder: str, figure_format: str | None = None
) -> list[str]:
    """Draws the run's figures into ``folder``; returns their paths.

    Every sweep gets the stability map; a sweep with oscillating runs, the
    period map; an ``analysis.orbit``, the bifurcation diagram; runs that reach
    more than one minimum, the basin map; a quadratic under gradient descent,
    heavy ball or Nesterov, the map with its closed-form boundary;
    ``analysis.sharpness``, the edge-of-stability figure of the unswept run; a
    one-parameter objective, the cost curve with its tangent and the descent
    path.
    """
    fmt = figure_format or exp.config["figures"]["format"]
    dpi = exp.config["figures"]["dpi"]
    description = ds.attrs.get("config", "")
    analysis = exp.config["analysis"]
    drawn = [("stability_map", lambda: figures.plot_stability_map(ds))]
    if (ds["regime"] == Regime.OSCILLATING).any():
        drawn.append(("period_map", lambda: diagrams.plot_period_map(ds)))
    if "orbit" in ds and exp.sweep:
        drawn.append(("bifurcation", lambda: diagrams.plot_bifurcation(ds)))
    if "basin" in ds and ds.sizes.get("minimum", 0) >= 2:
        drawn.append(("basin_map", lambda: diagrams.plot_basin_map(ds)))
    if analysis["sharpness"]:
        drawn.append(("edge_of_stability", lambda: _edge_of_stability(exp)))
    if "theory_radius" in ds:
        drawn.append(("theory_overlay", lambda: theory.plot_theory_overlay(ds, exp)))
    if objectives.scalar_parameter(exp.config) is not None:
        drawn.append(("cost_tangent", lambda: figures.plot_cost_tangent(exp)))
        drawn.append(("descent_path", lambda: figures.plot_descent_path(exp)))
    paths = []
    for stem, draw in drawn:
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                paths.append(figures.save(draw(), folder, stem, fmt, dpi, description))
            gc.collect()  # a figure's cycles hold its arrays; free them now
        except (OverflowError, ValueError) as err:
            # Values at the edge of the float range (a learning rate of 1e300)
            # can defeat matplotlib's axes; the results are kept regardless.
            warnings.warn(
                f"{stem}.{fmt} was not drawn: {err}", FigureWarning, stacklevel=2
            )
    return paths


class FigureWarning(UserWarning):
    """A figure could not be drawn; the results were saved all the same."""


def _edge_of_stability(exp):
    analysis = exp.config["analysis"]
    eos = sharpness.edge_of_stability(
        exp,
        every=analysis["sharpness_every"],
        iterations=analysis["sharpness_iterations"],
    )
    return sharpness.plot_edge_of_stability(eos)


def load(out: str) -> xr.Dataset:
    """Reopens the results that :func:`run` wrote into ``out``."""
    return store.load(out)
