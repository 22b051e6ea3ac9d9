"""Regenerates the pictures the README shows.

python scripts/readme_figures.py

Each picture comes from a config in configs/ (or the built-in default) run
into a scratch folder; a few minutes on two cores. The fractal box counts
come from the longer run the README describes.
"""

import os
import shutil
import tempfile

import dynamics

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(HERE, "..", "docs")
CONFIGS = os.path.join(HERE, "..", "configs")

#: (config or None for the default, figure the run writes, name under docs/)
PICTURES = [
    (None, "stability_map.png", "seed_quadratic_map.png"),
    (None, "descent_path.png", "seed_quadratic_path.png"),
    ("bifurcation.yaml", "bifurcation.png", "bifurcation.png"),
    ("logistic_periods.yaml", "period_map.png", "period_map.png"),
    ("himmelblau_basins.yaml", "basin_map.png", "basin_map.png"),
    ("momentum_quadratic.yaml", "theory_overlay.png", "theory_overlay.png"),
    ("edge_of_stability.yaml", "edge_of_stability.png", "edge_of_stability.png"),
]


def main():
    os.makedirs(DOCS, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        done = {}
        for config, name, target in PICTURES:
            if config not in done:
                out = os.path.join(scratch, config or "default")
                path = None if config is None else os.path.join(CONFIGS, config)
                dynamics.run(path, out)
                done[config] = out
            shutil.copy(os.path.join(done[config], name), os.path.join(DOCS, target))
            print("wrote", os.path.normpath(os.path.join(DOCS, target)))
    animations()


def animations():
    seed = dynamics.load_config(None, ["steps=30"])
    rosenbrock = {
        "name": "rosenbrock-adam",
        "objective": {"name": "rosenbrock"},
        "start": {"x": -1.2, "y": 1.0},
        "optimizer": {"name": "adam", "learning_rate": 0.02},
        "steps": 2000,
    }
    tilted = os.path.join(CONFIGS, "tilted_double_well.yaml")
    for name, write in [
        ("descent_path.gif", lambda p: dynamics.animate_path(seed, p, fps=4)),
        (
            "descent_path_2d.gif",
            lambda p: dynamics.animate_path(rosenbrock, p, max_frames=80, fps=10),
        ),
        (
            "zoom.gif",
            lambda p: dynamics.animate_zoom(
                tilted,
                p,
                center={"optimizer.learning_rate": 0.4, "start.w": -1.15},
                follow=True,
                frames=10,
                resolution=128,
            ),
        ),
    ]:
        path = os.path.join(DOCS, name)
        write(path)
        print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
