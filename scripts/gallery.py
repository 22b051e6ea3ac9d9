"""Regenerates the gallery of stability maps in docs/gallery from configs/.

    python scripts/gallery.py                 # every headline config, full size
    python scripts/gallery.py --quick         # 48 values per axis, for a look
    python scripts/gallery.py catapult        # only the configs named

Configs without a sweep are skipped. Each map is copied to
docs/gallery/NAME.png, and a Markdown table of the pictures with their run
times is printed for the README.
"""

import argparse
import glob
import os
import shutil
import tempfile
import time

import dynamics

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
GALLERY = os.path.join(ROOT, "docs", "gallery")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="config names (default: all)")
    parser.add_argument(
        "--quick", action="store_true", help="at most 48 values per swept axis"
    )
    args = parser.parse_args()
    paths = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
    if args.names:
        paths = [p for p in paths if os.path.basename(p)[:-5] in args.names]
    os.makedirs(GALLERY, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for path in paths:
            name = os.path.basename(path)[:-5]
            exp = dynamics.load_config(path)
            if not exp.sweep:  # a single run (edge_of_stability) has no map
                continue
            overrides = _quick(exp) if args.quick else []
            out = os.path.join(scratch, name)
            started = time.perf_counter()
            ds = dynamics.run(path, out, overrides=overrides)
            seconds = time.perf_counter() - started
            target = os.path.join(GALLERY, f"{name}.png")
            shutil.copy(os.path.join(out, "stability_map.png"), target)
            shape = " × ".join(str(n) for n in ds["regime"].shape) or "1"
            rows.append(
                f"| `configs/{name}.yaml` | {shape} × {exp.steps} steps | "
                f"{seconds:.0f} s | ![{name}](docs/gallery/{name}.png) |"
            )
            print(f"{name}: {shape} runs in {seconds:.1f} s -> {target}", flush=True)
    print("\n| config | runs | time | map |\n|---|---|---|---|")
    print("\n".join(rows))


def _quick(exp):
    overrides = []
    for axis in exp.sweep:
        if len(axis.values) > 48 and axis.scale in ("linear", "log"):
            overrides.append(f"sweep.{axis.key}.num=48")
    return overrides


if __name__ == "__main__":
    main()
