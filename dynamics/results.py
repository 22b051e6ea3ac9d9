"""Per-run summaries as a labelled ``xarray.Dataset``, and what it says in short.

Dimensions are named by the sweep keys exactly as written, with their values
as coordinates. ``regime`` holds the integer codes of
:class:`dynamics.classify.Regime`, described by the CF attributes
``flag_values`` and ``flag_meanings``.
"""

import datetime
import importlib.metadata
import platform
from typing import NamedTuple

import jax
import numpy as np
import xarray as xr

from dynamics import basins, engine
from dynamics.classify import Regime
from dynamics.config import Experiment

#: Each per-run variable, with its meaning.
VARIABLES = {
    "regime": "long-run behaviour; see flag_values and flag_meanings",
    "overshoot": "converged while successive steps mostly point in opposite "
    "directions (the zig-zag)",
    "period": "period of the orbit the run settles on: 1 for a fixed point, "
    "p >= 2 for a cycle, 0 when none",
    "initial_loss": "loss at the start",
    "final_loss": "loss at the last iterate",
    "max_loss": "largest loss seen along the run",
    "steps_to_converge": "first step from which the gradient norm stays within "
    "classify.rtol of its largest value; -1 if never",
    "diverged_at": "first step with a non-finite loss or parameter; -1 if none",
    "nonfinite_start": "the loss or its gradient is not finite at the start: "
    "the run is diverged from step 0 for want of a number, not by growing",
}
#: Variables present when the config's ``analysis`` section asks for them.
MEASURED = {
    "lyapunov": "finite-time Lyapunov exponent: average log growth per step of "
    "a small perturbation of the optimizer state, over the second half of the "
    "run; NaN when diverged",
    "chaotic": "oscillating with no period up to 64 and a Lyapunov exponent "
    "above classify.CHAOS",
    "sharpness": "largest eigenvalue of the loss Hessian at the last iterate",
    "max_sharpness": "largest sharpness measured along the run (every "
    "analysis.sharpness_every steps)",
    "orbit": "the last iterates of analysis.orbit (a parameter or the loss)",
    "basin": "index of the minimum the run converged to (along the minimum "
    "dimension of basin_minimum); -1 if it did not converge",
}

_PACKAGES = ("dynamics", "jax", "jaxlib", "numpy", "optax", "xarray", "zarr")


def to_dataset(exp: Experiment, summary: dict, attrs: dict | None = None) -> xr.Dataset:
    """Shapes flat per-run arrays from the engine into a Dataset over the sweep."""
    dims = tuple(axis.key for axis in exp.sweep)
    shape = exp.shape
    variables = {}
    for name, meaning in (VARIABLES | MEASURED).items():
        if name not in summary or name == "orbit":
            continue
        values = np.asarray(summary[name]).reshape(shape)
        variables[name] = (dims, values, {"long_name": meaning})
    coords = {}
    if "orbit" in summary:
        orbit = np.asarray(summary["orbit"])
        window = orbit.shape[-1]
        variables["orbit"] = (
            dims + ("orbit_step",),
            orbit.reshape(shape + (window,)),
            {
                "long_name": MEASURED["orbit"],
                "of": exp.config["analysis"]["orbit"],
            },
        )
        coords["orbit_step"] = np.arange(exp.steps - window, exp.steps)
    if "final" in summary:
        variables.update(_basins(exp, summary, dims, shape))
    codes = np.array([code.value for code in Regime], dtype=np.int8)
    variables["regime"][2].update(
        flag_values=codes,
        flag_meanings=" ".join(code.label for code in Regime),
    )
    coords |= {
        axis.key: (
            axis.key,
            axis.values.astype(np.dtype(exp.dtype)),
            {"scale": axis.scale},
        )
        for axis in exp.sweep
    }
    ds = xr.Dataset(variables, coords=coords)
    ds.attrs.update(provenance(exp))
    ds.attrs.update(attrs or {})
    return ds


def _basins(exp, summary, dims, shape):
    converged = np.asarray(summary["regime"]) == Regime.CONVERGED
    found = basins.assign(
        summary["final"],
        converged,
        summary["final_loss"],
        reached=converged & (np.asarray(summary["steps_to_converge"]) >= 0),
    )
    meaning = MEASURED["basin"]
    if found.continuum:
        meaning += (
            f"; all -1 here: converged runs ended at more than "
            f"{basins.MAX_BASINS} distinct points (a continuum of minima)"
        )
    names = engine.parameter_names(exp)
    return {
        "basin": (
            dims,
            found.basin.reshape(shape).astype(np.int32),
            {"long_name": meaning},
        ),
        "basin_minimum": (
            ("minimum", "parameter"),
            found.minima,
            {"long_name": "the minimum of each basin (mean end point of its runs)"},
        ),
        "basin_loss": (("minimum",), found.loss, {"long_name": "loss at each minimum"}),
        "parameter": (("parameter",), np.array(names, dtype=str)),
    }


def provenance(exp: Experiment) -> dict:
    """Everything needed to trace a result back: config, versions, devices.

    ``config_hash`` is :func:`dynamics.store.config_hash` of the config: equal
    for configs that give equal results, whatever their name or figures.
    """
    from dynamics import store

    devices = jax.devices()
    config = exp.to_yaml()
    attrs = {
        "name": exp.name,
        "config": config,
        "config_hash": store.config_hash(config),
        "dtype": exp.dtype,
        "device_count": len(devices),
        "devices": ", ".join(sorted({str(d.device_kind) for d in devices})),
        "platform": devices[0].platform,
        "python": platform.python_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }
    for package in _PACKAGES:
        try:
            attrs[f"{package}_version"] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            attrs[f"{package}_version"] = "unknown"
    return attrs


class Summary(NamedTuple):
    """The short account of a sweep printed after a run.

    Attributes:
      counts: runs per regime label, in code order, plus ``"overshoot"``.
      total: runs in the sweep.
      stable_lr: the largest learning rate at which every run converged (every
        start and every other swept value), or None when none did or the
        learning rate is not swept.
      next_lr: the next learning rate of the grid above ``stable_lr``.
    """

    counts: dict
    total: int
    stable_lr: float | None
    next_lr: float | None


def summarize(ds: xr.Dataset) -> Summary:
    """Counts runs per regime and finds the largest learning rate stable everywhere."""
    regime = np.asarray(ds["regime"])
    counts = {
        code.label: int(np.sum(regime == code))
        for code in Regime
        if code != Regime.NOT_RUN or np.any(regime == code)
    }
    counts["overshoot"] = int(np.sum(np.asarray(ds["overshoot"])))
    stable_lr = next_lr = None
    key = next(
        (
            dim
            for dim in ds["regime"].dims
            if dim.startswith("optimizer.") and dim.endswith("learning_rate")
        ),
        None,
    )
    if key is not None:
        others = [dim for dim in ds["regime"].dims if dim != key]
        converged = (ds["regime"] == Regime.CONVERGED).all(dim=others)
        rates = np.asarray(ds[key])
        order = np.argsort(rates)
        good = np.asarray(converged)[order]
        if good.any():
            best = int(np.flatnonzero(good)[-1])
            stable_lr = float(rates[order][best])
            if best + 1 < len(order):
                next_lr = float(rates[order][best + 1])
    return Summary(
        counts=counts, total=int(regime.size), stable_lr=stable_lr, next_lr=next_lr
    )
