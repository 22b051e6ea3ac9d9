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

from dynamics.api import load, run, write_figures
from dynamics.classify import Regime
from dynamics.config import Axis, Experiment, load_config
from dynamics.errors import ConfigError
from dynamics.figures import plot_cost_tangent, plot_descent_path, plot_stability_map

__all__ = [
    "Axis",
    "ConfigError",
    "Experiment",
    "Regime",
    "load",
    "load_config",
    "plot_cost_tangent",
    "plot_descent_path",
    "plot_stability_map",
    "run",
    "write_figures",
]
