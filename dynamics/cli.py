"""The ``dynamics`` command line. The library prints nothing; this module does.

dynamics run [CONFIG] [key=value ...] [-o OUT] [--force] [--format png]
"""

import argparse
import datetime
import os
import sys
import time

EXIT_USAGE = 2


def main(argv=None) -> int:
    parser = _parser()
    # Overrides may follow options (`run CONFIG -o OUT steps=5`), which plain
    # argparse refuses for a positional list: gather the leftovers here.
    args, extra = parser.parse_known_args(argv)
    unknown = [item for item in extra if item.startswith("-") or "=" not in item]
    if unknown or (extra and args.command != "run"):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.items = list(args.items) + extra
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from dynamics.errors import ConfigError

    try:
        return args.handler(args)
    except ConfigError as err:
        print(f"dynamics: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (`dynamics run | head`)
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("\ndynamics: interrupted; nothing was written", file=sys.stderr)
        return 130


def _parser():
    parser = argparse.ArgumentParser(
        prog="dynamics",
        description="Where does training converge, oscillate or blow up? Sweeps "
        "optimizers over objectives and maps the regimes.",
    )
    parser.add_argument("--version", action="version", version=f"dynamics {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run a sweep from a YAML config and save results and figures",
        description="Run a sweep. Without CONFIG, runs the built-in seed quadratic. "
        "Arguments of the form key=value override config values, "
        "e.g. steps=500 sweep.start.w.num=64.",
    )
    run.add_argument(
        "items",
        nargs="*",
        metavar="CONFIG|key=value",
        help="a config file, then any overrides",
    )
    run.add_argument("-o", "--out", help="output folder (default: runs/NAME-TIME)")
    run.add_argument(
        "--force", action="store_true", help="replace the output folder if it exists"
    )
    run.add_argument(
        "--format",
        choices=("png", "svg", "pdf"),
        help="figure format (default: the config's, else png)",
    )
    run.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors"
    )
    run.set_defaults(handler=_run)
    return parser


def _run(args) -> int:
    started = time.perf_counter()
    from dynamics.errors import ConfigError

    paths = [item for item in args.items if "=" not in item]
    overrides = [item for item in args.items if "=" in item]
    if len(paths) > 1:
        raise ConfigError(
            f"give one config file, not {len(paths)}: "
            f"{' '.join(paths)}; overrides are written key=value"
        )
    from dynamics import api, config, results

    exp = config.load_config(paths[0] if paths else None, overrides)
    out = _default_out(exp.name) if args.out is None else args.out
    meter = None if args.quiet else _Meter(time.perf_counter())
    ds = api.run(exp, out, force=args.force, progress=meter, figure_format=args.format)
    if meter:
        meter.close()
    if not args.quiet:
        print(
            _report(exp, ds, results.summarize(ds), out, time.perf_counter() - started)
        )
    return 0


def _default_out(name):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.join("runs", f"{name}-{stamp}")
    suffix = 2
    while os.path.exists(out):
        out = os.path.join("runs", f"{name}-{stamp}-{suffix}")
        suffix += 1
    return out


class _Meter:
    """Progress on stderr, once a sweep has taken a few seconds.

    On a terminal one line is redrawn; elsewhere (a log) a line is written at
    most every few seconds.
    """

    def __init__(self, started, after=2.0, every=5.0):
        self.started, self.after, self.every = started, after, every
        self.shown, self.last = False, 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, done, total):
        now = time.perf_counter()
        elapsed = now - self.started
        if elapsed < self.after or (done >= total and not self.shown):
            return
        if not self.tty and done < total and now - self.last < self.every:
            return
        self.shown, self.last = True, now
        line = f"  {done:,}/{total:,} runs ({done / total:.0%}), {elapsed:.1f} s"
        print(line, end="\r" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self):
        if self.shown and self.tty:
            print(file=sys.stderr)


def _report(exp, ds, summary, out, seconds):
    shape = " × ".join(str(n) for n in exp.shape) or "1"
    lines = [
        f"{exp.name}: {summary.total:,} runs ({shape}) of {exp.steps} steps, "
        f"{exp.dtype}, {ds.attrs['device_count']} {ds.attrs['platform']} "
        "device(s)",
        "",
        "  regime                  runs    share",
    ]
    for label, count in summary.counts.items():
        if label == "overshoot":
            continue
        lines.append(f"  {label:<20} {count:>8,}  {count / summary.total:6.1%}")
        if label == "converged":
            shoot = summary.counts["overshoot"]
            lines.append(
                f"    {'with overshoot':<18} {shoot:>8,}  {shoot / summary.total:6.1%}"
            )
    rate = next((d for d in ds["regime"].dims if d.endswith("learning_rate")), None)
    others = [d for d in ds["regime"].dims if d != rate]
    if not others or all(d.startswith("start.") for d in others):
        where = "from every start"
    else:
        where = "at every " + ", ".join(others)
    if summary.stable_lr is not None:
        above = (
            f" (the next, {summary.next_lr:.4g}, does not)"
            if summary.next_lr is not None
            else ""
        )
        lines += [
            "",
            f"Largest learning rate that converges {where}: "
            f"{summary.stable_lr:.4g}{above}",
        ]
    elif rate is not None:
        lines += ["", f"No learning rate in the grid converges {where}."]
    files = sorted(name for name in os.listdir(out) if not name.startswith("."))
    lines += ["", f"Wrote {out}/: {', '.join(files)}", f"Wall time {seconds:.1f} s"]
    return "\n".join(lines)


def _version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dynamics")
    except PackageNotFoundError:
        return "unknown"
