"""dynamics: where does training converge, oscillate or blow up?

Sweeps of optimizers over objectives, run as one jitted JAX program, each run
classified by its long-run behaviour and collected into an ``xarray.Dataset``.

    import dynamics

    ds = dynamics.run()                          # the built-in seed quadratic
    ds = dynamics.run("my.yaml", out="runs/my")  # results and figures saved
    ds = dynamics.load("runs/my")
    fig = dynamics.plot_stability_map(ds)
"""

__version__ = "0.1.0"

import importlib

# Names are imported on first use, so that `dynamics --help` and errors in a
# config answer at once, before JAX loads.
_EXPORTS = {
    "run": "dynamics.api",
    "load": "dynamics.api",
    "write_figures": "dynamics.api",
    "Regime": "dynamics.classify",
    "Axis": "dynamics.config",
    "Experiment": "dynamics.config",
    "load_config": "dynamics.config",
    "ConfigError": "dynamics.errors",
    "plot_cost_tangent": "dynamics.figures",
    "plot_descent_path": "dynamics.figures",
    "plot_stability_map": "dynamics.figures",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dynamics' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
