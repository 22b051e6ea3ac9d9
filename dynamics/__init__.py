"""dynamics: where does training converge, oscillate or blow up?

Sweeps of optimizers over objectives, run as one jitted JAX program, each run
classified by its long-run behaviour and collected into an ``xarray.Dataset``.

    import dynamics

    ds = dynamics.run()                          # the built-in seed quadratic
    ds = dynamics.run("my.yaml", out="runs/my")  # results and figures saved
    ds = dynamics.load("runs/my")
    fig = dynamics.plot_stability_map(ds)
    fig = dynamics.plot_period_map(ds)           # periods and chaos
    print(dynamics.fractal_dimension(ds))        # roughness of the boundary
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
    "Style": "dynamics.figures",
    "plot_period_map": "dynamics.diagrams",
    "plot_bifurcation": "dynamics.diagrams",
    "plot_basin_map": "dynamics.diagrams",
    "Dimension": "dynamics.fractal",
    "fractal_dimension": "dynamics.fractal",
    "plot_box_counts": "dynamics.fractal",
    "plot_theory_overlay": "dynamics.theory",
    "edge_of_stability": "dynamics.sharpness",
    "plot_edge_of_stability": "dynamics.sharpness",
    "top_eigenvalue": "dynamics.sharpness",
    "refine": "dynamics.zoom",
    "animate_path": "dynamics.animate",
    "animate_zoom": "dynamics.animate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dynamics' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
