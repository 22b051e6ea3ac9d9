"""The box-counting dimension of the fractal-paper map's boundary.

    python scripts/fractal_boundary.py            # both maps, about 30 min on 2 cores
    python scripts/fractal_boundary.py --quick    # 96 × 96 each, a few minutes
    python scripts/fractal_boundary.py --reuse runs/fractal runs/fractal-zoom

Runs configs/fractal_lr_lr.yaml (the paper's first map) and
configs/fractal_lr_lr_zoom.yaml (a window on its ragged edge), or reuses run
folders made from them, and prints the dimension of the boundary between
diverged runs and the rest with its range over fit ranges. Writes the zoom's
box-count plot to docs/fractal_box_counts.png.
"""

import argparse
import os
import tempfile

import dynamics

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
CONFIGS = ["fractal_lr_lr.yaml", "fractal_lr_lr_zoom.yaml"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="96 values per axis")
    parser.add_argument(
        "--reuse", nargs=2, metavar="OUT", help="run folders of the two configs"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = []
        for index, name in enumerate(CONFIGS):
            if args.reuse:
                ds = dynamics.load(args.reuse[index])
            else:
                overrides = []
                if args.quick:
                    overrides = [
                        f"sweep.optimizer.learning_rate.{i}.num=96" for i in (0, 1)
                    ]
                path = os.path.join(ROOT, "configs", name)
                ds = dynamics.run(
                    path, os.path.join(scratch, name), overrides=overrides
                )
            dimension = dynamics.fractal_dimension(ds)
            results.append(dimension)
            shape = " × ".join(str(n) for n in ds["regime"].shape)
            print(f"{name} ({shape}): diverged/rest boundary dimension {dimension}")
            print(f"  box sizes {dimension.sizes.tolist()}")
            print(f"  counts    {dimension.counts.tolist()}")
    figure = dynamics.plot_box_counts(results[-1])
    figure.suptitle("fractal-paper map, zoomed on its edge", fontsize=9)
    target = os.path.join(ROOT, "docs", "fractal_box_counts.png")
    figure.savefig(target, dpi=150)
    print("wrote", os.path.relpath(target, ROOT))


if __name__ == "__main__":
    main()
