"""The ``dynamics`` command line. The library prints nothing; this module does.

dynamics run [CONFIG] [key=value ...] [-o OUT] [--force] [--format png]
dynamics zoom OUT [--window KEY=LOW:HIGH ...] [--center KEY=VALUE ... --factor F]
              [--num N] [--dtype float64] [-o NEW] [--force]
              [--adaptive [--levels L] [--budget RUNS] [--margin M]]
dynamics animate OUT|CONFIG [--zoom [--center KEY=VALUE ...] ...] [-o FILE]
dynamics summary OUT [--json]
dynamics report OUT [--html FILE] [--pdf FILE] [--force]
dynamics explore CONFIG|OUT [key=value ...] [--save FILE]
"""

import argparse
import contextlib
import datetime
import math
import os
import sys
import time
import warnings

EXIT_USAGE = 2
#: The longest path `dynamics animate` replays: it holds every iterate.
MAX_ANIMATED_STEPS = 10**6


def main(argv=None) -> int:
    with _signals_at_start() as started:
        code = _main(argv, started)
        if argv is None:
            # The work is done and said: a late Ctrl-C changes nothing, and
            # during the interpreter's shutdown it would only kill it (-2).
            import signal

            for number in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError):
                    signal.signal(number, signal.SIG_IGN)
        return code


def _main(argv, started) -> int:
    _FINISHED.clear()
    parser = _parser()
    # Overrides may follow options (`run CONFIG -o OUT steps=5`), which plain
    # argparse refuses for a positional list: gather the leftovers here.
    args, extra = parser.parse_known_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    unknown = [item for item in extra if item.startswith("-") or "=" not in item]
    if unknown or (extra and args.command not in ("run", "explore")):
        flag = next((item for item in unknown if item.startswith("--")), None)
        hint = ""
        if flag and args.command in ("run", "explore"):
            key = flag[2:].partition("=")[0].replace("-", "_")
            hint = f" (a config value is set as key=value, as in {key}=VALUE)"
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}{hint}")
    if extra:
        args.items = list(args.items) + extra
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    import jax  # noqa: F401  (loaded while a signal simply ends the process)

    started()
    from dynamics.errors import ConfigError

    try:
        return args.handler(args)
    except ConfigError as err:
        print(f"dynamics: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (`dynamics run | head`)
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as err:
        from dynamics.errors import Interrupted

        said = str(err) if isinstance(err, Interrupted) else ""
        if not said and _FINISHED:
            said = f"interrupted; the results are complete in {_FINISHED[-1]}"
        elif not said:  # a run stopped before its sweep began has written none
            said = "interrupted" + "; nothing was written" * (args.command == "run")
        print(f"\ndynamics: {said}", file=sys.stderr)
        code = 128 + (getattr(err, "signal", None) or 2)  # 130 for Ctrl-C
        if argv is None:
            # A process of its own, stopped while XLA may still be compiling:
            # the interpreter's shutdown can then crash in XLA's threads. What
            # was finished is saved and closed; leave without the shutdown.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except OSError as err:  # a file the user named that cannot be read or written
        where = f"'{err.filename}': " if err.filename else ""
        print(f"dynamics: error: {where}{err.strerror or err}", file=sys.stderr)
        return EXIT_USAGE


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
        "--restart",
        action="store_true",
        help="discard an unfinished sweep into the output folder instead of "
        "resuming it",
    )
    run.add_argument(
        "--report",
        action="store_true",
        help="also write report.html and report.pdf into the output folder",
    )
    figures = run.add_argument_group(
        "figures (each sets the config's figures.KEY, see the README)"
    )
    figures.add_argument(
        "--format",
        metavar="FMT[,FMT]",
        help="png, svg or pdf, or several: pdf,png (default: the config's, else png)",
    )
    figures.add_argument("--dpi", metavar="N", help="dots per inch of PNG output")
    figures.add_argument(
        "--size",
        metavar="SIZE",
        help="single (one journal column), double, or WIDTH,HEIGHT in inches",
    )
    figures.add_argument(
        "--palette", metavar="NAME", help="okabe_ito, tol_bright or tol_muted"
    )
    figures.add_argument("--font-size", metavar="PT", help="points")
    run.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors"
    )
    spread = run.add_argument_group(
        "several processes or hosts (see dynamics.distributed)",
        "Start the same command once per process, each with its own "
        "--process-id, and -o on a file system they share.",
    )
    spread.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="address of process 0 (default: $JAX_COORDINATOR_ADDRESS)",
    )
    spread.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="how many processes in all (default: $JAX_NUM_PROCESSES)",
    )
    spread.add_argument(
        "--process-id",
        type=int,
        metavar="I",
        help="this process's index, 0 … N-1 (default: $JAX_PROCESS_ID)",
    )
    spread.add_argument(
        "--distributed",
        action="store_true",
        help="join the processes of a cluster JAX detects (Slurm, Open MPI, "
        "Kubernetes), with whatever the flags above leave out",
    )
    run.set_defaults(handler=_run)
    _zoom_parser(commands)
    _animate_parser(commands)
    _summary_parser(commands)
    _report_parser(commands)
    _explore_parser(commands)
    return parser


def _summary_parser(commands):
    summary = commands.add_parser(
        "summary",
        help="runs per regime and the largest stable learning rate of a run",
        description="Print the summary table of OUT (a folder `dynamics run` "
        "wrote): runs and share per regime, the share converged, the sweep axes, "
        "and the largest learning rate at which every run converged (per row of "
        "a second swept hyperparameter). Reads the results a block at a time.",
    )
    summary.add_argument("source", metavar="OUT", help="a run folder")
    summary.add_argument("--json", action="store_true", help="print JSON, for scripts")
    summary.set_defaults(handler=_summary)


def _summary(args) -> int:
    import json

    from dynamics import report, store

    if os.path.isdir(os.path.join(store.partial_path(args.source), store.CHUNKS)):
        ds = store.load_unfinished(args.source)  # a stopped sweep: what is done
    else:
        ds = store.load(args.source)
    with _damaged(args.source):
        table = report.summary_table(ds)
    if args.json:
        print(json.dumps(table, indent=2, allow_nan=False))
    else:
        print(report.format_table(table))
    return 0


@contextlib.contextmanager
def _damaged(source):
    """Results that fail as they are read are damaged: one message, no traceback."""
    from dynamics.errors import ConfigError

    try:
        yield
    except (ConfigError, OSError, KeyboardInterrupt):
        raise
    except Exception as err:
        raise ConfigError(
            f"the results in '{source}' cannot be read ({type(err).__name__}: "
            f"{err}); they are damaged: run the sweep again"
        ) from None


def _report_parser(commands):
    report = commands.add_parser(
        "report",
        help="one HTML file and one PDF with the config, provenance, summary "
        "and every figure of a run",
        description="Write OUT/report.html (self-contained: images embedded) and "
        "OUT/report.pdf for OUT, a folder `dynamics run` wrote.",
    )
    report.add_argument("source", metavar="OUT", help="a run folder")
    report.add_argument("--html", metavar="FILE", help="default: OUT/report.html")
    report.add_argument("--pdf", metavar="FILE", help="default: OUT/report.pdf")
    report.add_argument(
        "--force", action="store_true", help="replace an earlier report"
    )
    report.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors"
    )
    report.set_defaults(handler=_report_command)


def _report_command(args) -> int:
    from dynamics import report

    with _plain_warnings(), _damaged(args.source):
        html, pdf = report.write_report(
            args.source, html=args.html, pdf=args.pdf, force=args.force
        )
    if not args.quiet:
        print(f"Wrote {html}\nWrote {pdf}")
    return 0


def _explore_parser(commands):
    explore = commands.add_parser(
        "explore",
        help="a window with the map, the cost curve and sliders for start, "
        "learning rate and steps",
        description="Open a matplotlib window for CONFIG (a YAML file) or OUT (a "
        "folder `dynamics run` wrote): the stability map beside the cost curve or "
        "contours, sliders for the start, the learning rate and the steps that "
        "redraw the descent path, and a click on a map cell shows that run.",
    )
    explore.add_argument("source", metavar="CONFIG|OUT")
    explore.add_argument(
        "items",
        nargs="*",
        metavar="key=value",
        help="overrides of CONFIG's values, as for dynamics run",
    )
    explore.add_argument(
        "--save",
        metavar="FILE",
        help="write the window's first view to FILE instead of opening it "
        "(for machines without a screen)",
    )
    explore.add_argument(
        "--force", action="store_true", help="with --save, replace FILE if it exists"
    )
    explore.set_defaults(handler=_explore)


def _explore(args) -> int:
    from dynamics import explore
    from dynamics.errors import ConfigError

    if args.save is not None:
        if os.path.isdir(args.save):
            raise ConfigError(f"--save {args.save} is a folder; give a file name")
        if os.path.exists(args.save) and not args.force:
            raise ConfigError(
                f"--save {args.save}: the file exists; add --force to replace it"
            )
        parent = os.path.dirname(os.path.abspath(args.save))
        if not os.path.isdir(parent):
            raise ConfigError(
                f"--save {args.save}: the folder '{parent}' does not exist"
            )
    elif args.force:
        raise ConfigError("--force applies to --save; add --save FILE")
    with _plain_warnings():
        explore.show(args.source, args.items, save=args.save)
    if args.save:
        print(f"Wrote {args.save}")
    return 0


def _run(args) -> int:
    started = time.perf_counter()
    from dynamics.errors import ConfigError

    paths = [item for item in args.items if "=" not in item]
    flags, flagged, named = _figure_flags(args)  # listed with the config's
    overrides = [item for item in args.items if "=" in item] + flags
    if len(paths) > 1:
        raise ConfigError(
            f"give one config file, not {len(paths)}: "
            f"{' '.join(paths)}; overrides are written key=value"
        )
    from dynamics import distributed

    options = distributed.settings(args.coordinator, args.processes, args.process_id)
    if args.distributed and options is None:
        options = {}
    spread = options is not None and options.get("num_processes") != 1
    if spread and args.out is None:
        raise ConfigError(
            "a run over several processes needs -o: the same folder, on a file "
            "system every process sees"
        )
    from dynamics import api, config, results

    if spread and not args.quiet:
        print(
            "dynamics: joining the other processes (waiting up to "
            f"{distributed.JOIN_SECONDS} s for them)",
            file=sys.stderr,
            flush=True,
        )
    # Before anything touches JAX's devices: checking a model's config draws
    # its starting weights.
    index, count = distributed.initialize(options)
    try:
        try:
            exp = config.load_config(
                paths[0] if paths else None, overrides, named=named
            )
        except ConfigError as err:
            raise ConfigError(flagged + err.problems) from None
        if flagged:
            raise ConfigError(flagged)
        problem = None
    except ConfigError as err:
        if count == 1:
            raise
        exp, problem = None, str(err)  # the others must hear of it
    out = _default_out(exp.name) if args.out is None else args.out
    meter = None if args.quiet or index else _Meter(time.perf_counter())
    options = {
        "force": args.force,
        "restart": args.restart,
        "progress": meter,
        "command": _command(args.argv),
    }
    from dynamics import store
    from dynamics.errors import Interrupted

    with _plain_warnings(), _stop_on_signals():
        try:
            if count > 1:
                ds = distributed.run(exp, out, problem=problem, **options)
            else:
                ds = api.run(exp, out, **options)
        except Interrupted as err:
            if os.path.isdir(os.path.join(out, "results.zarr")) and not os.path.isdir(
                store.partial_path(out)
            ):  # the stop came as the finished results were put in place
                _FINISHED.append(out)
                said = (
                    f"interrupted as the run ended; its results are complete in {out}"
                )
                raise Interrupted(said, err.signal) from None
            if args.out is not None:
                raise
            # The default output is new each time: name the one to go on in.
            said = str(err).replace(store.RESUME, f"{store.RESUME}, with -o {out}")
            raise Interrupted(said, err.signal) from None
    _FINISHED.append(out)
    if meter:
        meter.close()
    if index:
        return 0
    if args.report:
        from dynamics import report

        report.write_report(out, force=True)  # a new run's report is its own
    if not args.quiet:
        print(
            _report(exp, ds, results.summarize(ds), out, time.perf_counter() - started)
        )
    return 0


def _animate_parser(commands):
    animate = commands.add_parser(
        "animate",
        help="the descent path, or a zoom into the boundary, as a GIF",
        description="Animate the unswept run of OUT (a folder `dynamics run` wrote) "
        "or of a CONFIG file: on the cost curve with its tangent for one "
        "parameter, on contours for two. With --zoom, a sequence of stability "
        "maps zooming into the converged/diverged boundary instead. Writes into "
        "OUT (descent_path.gif or zoom.gif), or beside CONFIG, unless -o is given.",
    )
    animate.add_argument("source", metavar="OUT|CONFIG")
    animate.add_argument("--steps", type=int, metavar="N", help="steps to animate")
    animate.add_argument("--fps", type=float, metavar="F", help="frames per second")
    animate.add_argument(
        "--max-frames",
        type=int,
        default=120,
        metavar="N",
        help="at most this many frames, evenly spaced steps (default 120)",
    )
    animate.add_argument(
        "--zoom", action="store_true", help="zoom into the boundary of the map"
    )
    animate.add_argument(
        "--center",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --zoom: zoom on this point (default: follow the boundary)",
    )
    animate.add_argument(
        "--frames", type=int, default=8, metavar="N", help="with --zoom (default 8)"
    )
    animate.add_argument(
        "--factor",
        type=float,
        default=2.0,
        metavar="F",
        help="with --zoom: each window F times narrower than the last (default 2, "
        "in log space on a log axis), as --factor of dynamics zoom",
    )
    animate.add_argument(
        "--resolution",
        type=int,
        default=64,
        metavar="N",
        help="with --zoom: runs per axis per frame (default 64)",
    )
    animate.add_argument("-o", "--out", metavar="FILE", help="the GIF to write")
    animate.add_argument(
        "--force", action="store_true", help="replace the GIF if it exists"
    )
    animate.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors"
    )
    animate.set_defaults(handler=_animate)


def _animate(args) -> int:
    from dynamics.errors import ConfigError

    problems = _animate_problems(args)
    if problems:
        raise ConfigError(problems)
    if os.path.isdir(args.source):
        from dynamics import zoom as zooming

        exp = zooming.read_source(args.source)
        folder = args.source
    elif os.path.isfile(args.source):
        from dynamics import config

        exp = config.load_config(args.source)
        folder = os.path.dirname(args.source) or "."
    else:
        raise ConfigError(
            f"'{args.source}' does not exist; give a run folder or a config file"
        )
    stem = "zoom" if args.zoom else "descent_path"
    if args.out is None:
        prefix = "" if os.path.isdir(args.source) else f"{exp.name}-"
        target = os.path.join(folder, f"{prefix}{stem}.gif")
    else:
        target = args.out
    if not target.endswith(".gif"):
        raise ConfigError(f"-o {target}: the animation is a GIF; end the name in .gif")
    if os.path.exists(target) and not args.force:
        raise ConfigError(f"'{target}' already exists; add --force to replace it")
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        raise ConfigError(f"-o {target}: the folder '{parent}' does not exist")
    from dynamics import animate

    # Written beside the target and renamed: a reader never sees half a GIF.
    partial = os.path.join(parent, f".{os.path.basename(target)}.partial.gif")
    try:
        if args.zoom:
            if len(exp.sweep) < 1:
                raise ConfigError(
                    f"{args.source} has no sweep, so there is no map to zoom into"
                )
            center = _centers(args.center) or None
            axes = [axis.key for axis in exp.sweep[:2]]
            if center is not None and sorted(center) != sorted(axes):
                raise ConfigError(
                    "--center: give one KEY=VALUE for each zoomed axis, "
                    + " and ".join(axes)
                )
            meter = None if args.quiet else _Meter(time.perf_counter())
            animate.animate_zoom(
                exp,
                partial,
                center=center,
                factor=1 / args.factor,
                frames=args.frames,
                resolution=args.resolution,
                fps=args.fps or 2,
                progress=meter,
                command=_command(args.argv),
            )
            if meter:
                meter.close()
        else:
            animate.animate_path(
                exp,
                partial,
                steps=args.steps,
                fps=args.fps or 10,
                max_frames=args.max_frames,
                command=_command(args.argv),
            )
        os.replace(partial, target)
    except ValueError as err:  # the animation's own checks of its arguments
        raise ConfigError(str(err)) from None
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    if not args.quiet:
        print(f"Wrote {target}")
    return 0


def _animate_problems(args):
    """Every problem of ``animate``'s flags, each with its fix."""
    problems = []
    zoom_only = args.center or args.frames != 8 or args.resolution != 64
    if not args.zoom and (zoom_only or args.factor != 2.0):
        problems.append(
            "--center, --frames, --factor and --resolution apply to --zoom; add --zoom"
        )
    if args.zoom and args.steps is not None:
        problems.append("--steps applies to the path, not to --zoom; drop it")
    if args.steps is not None and args.steps > MAX_ANIMATED_STEPS:
        problems.append(
            f"--steps {args.steps:,}: the path keeps every iterate; give at most "
            f"{MAX_ANIMATED_STEPS:,}"
        )
    if args.fps is not None and not 0.1 <= args.fps <= 100:
        problems.append(f"--fps {args.fps:g}: give frames per second from 0.1 to 100")
    checks = [
        ("--steps", args.steps, 1, "a whole number of steps, at least 1"),
        ("--max-frames", args.max_frames, 2, "at least 2"),
        ("--frames", args.frames, 1, "at least 1"),
        ("--resolution", args.resolution, 2, "runs per axis, at least 2"),
    ]
    for flag, value, least, fix in checks:
        if value is not None and not value >= least:
            problems.append(f"{flag} {value:g}: give {fix}")
    if not args.factor > 1:
        problems.append(
            f"--factor {args.factor:g}: each window is F times narrower than the "
            "last, so give F above 1, such as 2"
        )
    return problems


def _zoom_parser(commands):
    zoom = commands.add_parser(
        "zoom",
        help="recompute a window of an earlier map, at full resolution or adaptively",
        description="Recompute a window of the map in OUT (a folder `dynamics run` "
        "wrote) as a new run. Axes not named keep their range; a window may reach "
        "outside the original one. Writes OUT-zoom-1 (then -zoom-2, ...) beside "
        "OUT unless -o is given.",
    )
    zoom.add_argument("source", metavar="OUT", help="the run folder to zoom into")
    zoom.add_argument(
        "--window",
        action="append",
        default=[],
        metavar="KEY=LOW:HIGH",
        help="sweep KEY from LOW to HIGH, in its own units (repeat per axis)",
    )
    zoom.add_argument(
        "--center",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a window around VALUE, --factor times narrower than KEY's range",
    )
    zoom.add_argument(
        "--factor",
        type=float,
        metavar="F",
        help="how much narrower a --center window is (default 10; in log space "
        "on a log axis)",
    )
    zoom.add_argument(
        "--num", type=int, metavar="N", help="points per axis (default: as in OUT)"
    )
    zoom.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        help="precision of the new run (default: OUT's); a narrow window may "
        "need float64",
    )
    zoom.add_argument(
        "--adaptive",
        action="store_true",
        help="refine only cells whose corners disagree, doubling the resolution "
        "--levels times",
    )
    zoom.add_argument(
        "--levels", type=int, metavar="L", help="doublings with --adaptive (default 3)"
    )
    zoom.add_argument(
        "--budget",
        type=int,
        metavar="RUNS",
        help="with --adaptive, stop refining before going over this many runs",
    )
    zoom.add_argument(
        "--margin",
        type=int,
        metavar="M",
        help="with --adaptive, also refine cells up to M cells from a boundary "
        "(default 0; 1 catches more of a rough boundary, for more runs)",
    )
    zoom.add_argument("-o", "--out", help="output folder (default: OUT-zoom-N)")
    zoom.add_argument(
        "--force", action="store_true", help="replace the output folder if it exists"
    )
    zoom.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors"
    )
    zoom.set_defaults(handler=_zoom)


def _zoom(args) -> int:
    started = time.perf_counter()

    from dynamics import zoom as zooming
    from dynamics.errors import ConfigError

    source = zooming.read_source(args.source)
    if not source.sweep:
        raise ConfigError(
            f"{args.source} is a single run with no sweep, so there is no map to "
            "zoom into; run a config with a sweep first"
        )
    windows = _windows(args.window)
    centers = _centers(args.center)
    problems = []  # every one of the flags' problems, not only the first
    both = sorted(set(windows) & set(centers))
    if both:
        problems.append(
            f"--window and --center both name {both[0]}; give one of them per key"
        )
    if args.factor is not None and not centers:
        problems.append("--factor sets the size of a --center window; add --center")
    if not args.adaptive and any(
        value is not None for value in (args.levels, args.budget, args.margin)
    ):
        problems.append(
            "--levels, --budget and --margin apply to --adaptive; add --adaptive"
        )
    if args.levels is not None and args.levels < 1:
        problems.append(f"--levels {args.levels}: give at least 1 doubling")
    if not (windows or centers or args.num is not None or args.dtype or args.adaptive):
        problems.append(
            "nothing to zoom: give --window KEY=LOW:HIGH, --center KEY=VALUE, "
            "--num N, --dtype or --adaptive"
        )
    if problems:
        raise ConfigError(problems)
    import yaml

    from dynamics import api, config, results, store

    with _plain_warnings():
        if centers:
            factor = 10.0 if args.factor is None else args.factor
            windows |= zooming.window_around(source, centers, factor)
        try:
            exp = zooming.zoom(source, windows, num=args.num, dtype=args.dtype)
        except ConfigError as err:
            # The zoomed config is built here, not read from a file: name the
            # arguments that made it.
            raise ConfigError(
                [
                    problem.replace("config: ", "the zoomed config: ", 1)
                    + "; change --window, --center/--factor or --num"
                    for problem in err.problems
                ]
            ) from None
        out = _zoom_out(args.source) if args.out is None else args.out
        if os.path.realpath(out) == os.path.realpath(args.source):
            raise ConfigError(
                f"-o {out} is the run being zoomed; give another folder, or none "
                "for OUT-zoom-N beside it"
            )
        meter = None if args.quiet else _Meter(time.perf_counter())
        if not args.adaptive:
            ds = api.run(exp, out, force=args.force, progress=meter)
        else:
            levels = 3 if args.levels is None else args.levels
            with store.run_directory(out, force=args.force) as folder:
                ds = zooming.refine(
                    exp,
                    levels=levels,
                    budget=args.budget,
                    margin=args.margin or 0,
                    progress=meter,
                )
                exp = config.load_config(yaml.safe_load(ds.attrs["config"]))
                store.save(ds, folder)
                path = os.path.join(folder, "config.yaml")
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(ds.attrs["config"])
                api.write_figures(exp, ds, folder)
                from dynamics import figures

                figures.save_all(
                    zooming.plot_refinement(ds),
                    folder,
                    "refinement",
                    exp.config["figures"]["format"],
                    exp.config["figures"]["dpi"],
                    ds.attrs["config"],
                    metadata=api.figure_metadata(ds),
                )
            ds = store.load(out)
    if meter:
        meter.close()
    if not args.quiet:
        seconds = time.perf_counter() - started
        report = _report(exp, ds, results.summarize(ds), out, seconds)
        print(_zoom_header(args.source, source, exp, ds, report))
    return 0


def _figure_flags(args):
    """The figure flags of ``run``, as overrides the config's schema checks;
    the problems of ``--format``, which is checked here; and each override's
    flag as typed, for the config's messages to name."""
    from dynamics.errors import ConfigError

    size = args.size
    if size is not None and "," in size:
        size = f"[{size}]"
    flags = {"dpi": args.dpi, "size": size, "palette": args.palette}
    flags["font_size"] = args.font_size
    problems = []
    if args.format is not None:  # in the config, so that config.yaml says so
        try:
            formats = _formats(args.format)  # one as itself, several as a list
            listed = f"[{', '.join(formats)}]"
            flags["format"] = formats[0] if len(formats) == 1 else listed
        except ConfigError as err:
            problems = err.problems
    given = {
        "dpi": args.dpi,
        "size": args.size,
        "palette": args.palette,
        "font_size": args.font_size,
        "format": args.format,
    }
    named = {
        f"figures.{key}={value}": f"--{key.replace('_', '-')} {given[key]}"
        for key, value in flags.items()
        if value
    }
    return list(named), problems, named


def _formats(text):
    from dynamics.errors import ConfigError
    from dynamics.schema import FIGURE_FORMATS

    formats = [part.strip().lower() for part in text.split(",")]  # PDF is pdf
    for fmt in formats:
        if fmt not in FIGURE_FORMATS:
            raise ConfigError(
                f"--format {text}: '{fmt}' is not one of "
                f"{', '.join(FIGURE_FORMATS)}; give one, or several as pdf,png"
            )
    if len(set(formats)) < len(formats):
        raise ConfigError(f"--format {text}: give each format once")
    return formats


def _command(argv):
    """The command line as typed: ``dynamics`` and its arguments."""
    import shlex

    return shlex.join(["dynamics", *argv])


@contextlib.contextmanager
def _signals_at_start():
    """Ctrl-C and SIGTERM while JAX loads end the process at once: nothing is
    written yet, and an exception raised inside JAX's start-up can crash the
    interpreter or be swallowed. Once the caller says so (by calling what this
    yields), they raise KeyboardInterrupt, noted in case it is swallowed; the
    handlers before are restored at the end."""
    import signal

    from dynamics import errors

    def end(number, frame):
        print("\ndynamics: interrupted; nothing was written", file=sys.stderr)
        sys.stderr.flush()
        os._exit(128 + number)

    def unraisable(report):
        """A KeyboardInterrupt swallowed (inside a garbage-collector callback)
        is not printed as an ignored exception: a sweep obeys its note between
        chunks, and anything else ends as at start-up."""
        if not isinstance(report.exc_value, KeyboardInterrupt):
            return hook(report)
        if not _SWEEPING:
            end(getattr(report.exc_value, "signal", 2), None)

    numbers = [signal.SIGINT, signal.SIGTERM]
    try:
        # A signal ignored from the start (a background job's Ctrl-C) stays so.
        previous = {n: signal.getsignal(n) for n in numbers}
        numbers = [n for n in numbers if previous[n] is not signal.SIG_IGN]
        for number in numbers:
            signal.signal(number, end)
    except ValueError:  # not the main thread: leave signals alone
        yield lambda: None
        return

    def started():
        for number in numbers:
            signal.signal(number, lambda number, frame: errors.interrupt(number))

    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield started
    finally:
        sys.unraisablehook = hook
        errors.clear_stop()
        for number in numbers:
            signal.signal(number, previous[number])


#: Set while a sweep runs under _stop_on_signals, which saves what is done.
_SWEEPING = []
#: The output of a run whose results are complete, once they are.
_FINISHED = []


@contextlib.contextmanager
def _stop_on_signals():
    """Ctrl-C and SIGTERM (a scheduler's notice, ``kill``) stop a run once:
    the finished chunks stay saved for a resume, and a second signal does not
    cut short the stopping."""
    import signal

    numbers = (signal.SIGINT, signal.SIGTERM)

    from dynamics import errors

    def stop(number, frame):
        for each in numbers:
            signal.signal(each, signal.SIG_IGN)
        errors.interrupt(number)

    try:
        # A signal ignored from the start (a background job's Ctrl-C) stays so.
        numbers = [n for n in numbers if signal.getsignal(n) is not signal.SIG_IGN]
        previous = {number: signal.signal(number, stop) for number in numbers}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    _SWEEPING.append(True)
    try:
        yield
    finally:
        _SWEEPING.clear()
        errors.clear_stop()
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def _plain_warnings():
    """The library's warnings to the user, as one plain line each on stderr."""
    from dynamics import api, store
    from dynamics import zoom as zooming

    shown = (
        zooming.ResolutionWarning,
        zooming.BudgetWarning,
        api.FigureWarning,
        api.ResumeNotice,
        store.DamageWarning,
    )
    original = warnings.showwarning
    said = set()

    def say(message, category, *where, **more):
        if issubclass(category, shown):
            if str(message) not in said:  # zoom and run check the same window
                said.add(str(message))
                kind = "" if issubclass(category, api.ResumeNotice) else "warning: "
                print(f"dynamics: {kind}{message}", file=sys.stderr)
        else:
            original(message, category, *where, **more)

    with warnings.catch_warnings():
        for category in shown:
            warnings.simplefilter("always", category)
        warnings.showwarning = say
        yield


def _windows(items):
    return _keyed(
        items,
        "--window",
        "KEY=LOW:HIGH with two numbers",
        "optimizer.learning_rate=0.9:1.1",
        lambda text: _numbers(text.partition(":")[::2]),
    )


def _centers(items):
    return _keyed(
        items,
        "--center",
        "KEY=VALUE with a number",
        "optimizer.learning_rate=1.0",
        lambda text: (_numbers([text]) or [None])[0],
    )


def _keyed(items, flag, form, example, parse):
    """``KEY=...`` arguments of a repeated flag, each KEY once."""
    from dynamics.errors import ConfigError

    found = {}
    for item in items:
        key, _, text = item.partition("=")
        key, value = key.strip(), parse(text)
        if not key or value is None:
            raise ConfigError(f"{flag} '{item}': write {form}, as in {flag} {example}")
        if key in found:
            raise ConfigError(f"{flag} names {key} twice; give it once")
        found[key] = value
    return found


def _numbers(texts):
    """The finite numbers written in ``texts``, or None if any is not one."""
    try:
        values = tuple(float(text) for text in texts)
    except ValueError:
        return None
    return values if all(map(math.isfinite, values)) else None


def _zoom_out(source):
    """Beside the source: a zoom is a run of its own, kept when OUT is replaced."""
    base = os.path.normpath(source)
    if os.path.basename(base) in ("", ".", ".."):
        base = os.path.abspath(source)
    number = 1
    while os.path.exists(f"{base}-zoom-{number}"):
        number += 1
    return f"{base}-zoom-{number}"


def _zoom_header(path, source, exp, ds, report):
    """The run report, preceded by each axis' new range beside its old one."""
    before = {axis.key: axis.values for axis in source.sweep}
    lines = [f"Zoom of {path}:"]
    for axis in exp.sweep:
        new, old = axis.values, before[axis.key]
        lines.append(
            f"  {axis.key}: {new.min():.10g} to {new.max():.10g}, {len(new)} points "
            f"(was {old.min():.6g} to {old.max():.6g}, {len(old)})"
        )
    if "computed" in ds:
        # The table below counts cells of the map; only `runs` were simulated.
        cells = int(ds["computed"].size)
        coarse = " × ".join(str(n) for n in ds.attrs["coarse_resolution"])
        lines.append(
            f"  adaptive: {ds.attrs['runs']:,} runs for {cells:,} cells "
            f"({ds.attrs['runs'] / cells:.1%} of a full grid), "
            f"{ds.attrs['levels']} level{'s' * (ds.attrs['levels'] != 1)} up "
            f"from {coarse}"
        )
        report = report.replace(f" {cells:,} runs (", f" {cells:,} cells (", 1)
        report = report.replace(
            "  regime                  runs", "  regime                 cells", 1
        )
    return "\n".join(lines) + "\n\n" + report


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
        if label == "diverged" and "nonfinite_start" in ds:
            bad = int(ds["nonfinite_start"].sum())
            if bad:
                share = bad / summary.total
                lines.append(f"    {'non-finite start':<18} {bad:>8,}  {share:6.1%}")
        if label == "oscillating":
            oscillating = ds["regime"] == 1
            periodic = int((oscillating & (ds["period"] >= 2)).sum())
            rows = [("periodic", periodic)]
            if "chaotic" in ds:
                chaotic = int(ds["chaotic"].sum())
                rows += [
                    ("chaotic", chaotic),
                    ("aperiodic", count - periodic - chaotic),
                ]
            for name, part in rows:
                share = part / summary.total
                lines.append(f"    {name:<18} {part:>8,}  {share:6.1%}")
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
    if "theory_agreement" in ds.attrs:
        lines += [
            "",
            "The closed-form boundary (spectral radius 1) agrees with "
            f"{ds.attrs['theory_agreement']:.2%} of cells.",
        ]
    files = sorted(name for name in os.listdir(out) if not name.startswith("."))
    lines += ["", f"Wrote {out}/: {', '.join(files)}", f"Wall time {seconds:.1f} s"]
    return "\n".join(lines)


def _version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dynamics")
    except PackageNotFoundError:
        return "unknown"
