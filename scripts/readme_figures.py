"""Regenerates the pictures the README shows, from the built-in default run.

python scripts/readme_figures.py
"""

import os
import shutil
import tempfile

import dynamics

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(HERE, "..", "docs")


def main():
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "run")
        dynamics.run(None, out)
        os.makedirs(DOCS, exist_ok=True)
        for name, target in [
            ("stability_map.png", "seed_quadratic_map.png"),
            ("descent_path.png", "seed_quadratic_path.png"),
        ]:
            shutil.copy(os.path.join(out, name), os.path.join(DOCS, target))
            print("wrote", os.path.normpath(os.path.join(DOCS, target)))


if __name__ == "__main__":
    main()
