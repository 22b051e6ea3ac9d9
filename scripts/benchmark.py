"""Speed and memory of the engine against the two usual ways of running a sweep.

    python scripts/benchmark.py           # the issue's sizes (40 minutes, 2 cores)
    python scripts/benchmark.py --quick   # small sizes, for a look (a minute)
    python scripts/benchmark.py --memory  # also a 4096 x 4096 seed run's memory

Each workload is run by each method, each in a fresh process of its own on
this machine (so that its peak memory is its own, and its compilation is not
served from a cache):

- **engine**: ``dynamics.engine.simulate``, classification included;
- **numpy loop**: the same updates in NumPy, vectorized over the grid. For the
  starting cost it also does the engine's per-step bookkeeping and its whole
  classification, and the regimes it finds are compared with the engine's;
  for the network it does the updates and notes divergence only (less work
  than the engine: the ratio flatters NumPy);
- **per-step jit**: the approach of the fractal-boundary notebook: the model
  written as the notebook writes it, one jitted step of the whole batch
  dispatched from Python per training step, every loss kept;
- **per-step jit, own model** (networks only): the same dispatch of this
  package's model, to show how much of the engine's lead is the model's
  layout.

Times are the best of ``--repeat`` warm runs, with the first (compiling) run's
extra time reported apart. Updates per second count one run's one step as an
update. For the network, the share of the machine's matrix-multiply peak
(measured here, with a large product in the run's dtype) counts the
multiply-adds of the forward and backward passes. "agrees" is the share of
runs given the engine's label (the regime; diverged or not where a method
tells only that). Ratios are what to read: the machine is shared and noisy.
``--dtype float64`` runs everything in float64; on a GPU the same script runs
unchanged. The time to the first figure is that of ``dynamics run`` (the
default run) in a new process, first with an empty compilation cache and
then with the cache the first run filled.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

#: Rows of the table: workload name -> (builder, sizes) filled in by main().
METHODS = ("engine", "numpy loop", "per-step jit")


# The workloads. Each builder returns {method: callable} for one size, every
# callable returning the labels it found (for the agreement column).


def seed_methods(side, steps, dtype):
    import dynamics
    from dynamics import engine

    exp = dynamics.load_config(
        None,
        [
            f"steps={steps}",
            f"sweep.optimizer.learning_rate.num={side}",
            f"sweep.start.w.num={side}",
            "analysis.lyapunov=false",
            "analysis.basins=false",
            f"dtype={dtype}",
        ],
    )
    columns = engine.grid(exp)
    rates = columns["optimizer.learning_rate"].astype(dtype)
    starts = columns["start.w"].astype(dtype)
    settings = exp.config["classify"]
    window = min(steps, settings["window"])

    def run_engine():
        return engine.simulate(exp)["regime"]

    def numpy_loop():
        return _numpy_seed(rates, starts, steps, window, settings["rtol"])

    def per_step():
        import jax
        import jax.numpy as jnp

        @jax.jit
        def step(w, rate):
            loss, grad = jax.vmap(jax.value_and_grad(lambda v: (v - 2) ** 2 + 1))(w)
            return w - rate * grad, loss

        w, rate, losses = jnp.asarray(starts), jnp.asarray(rates), []
        for _ in range(steps):
            w, loss = step(w, rate)
            losses.append(loss)
        history = np.stack(jax.device_get(losses), axis=1)  # every loss, kept
        return _diverged(history)

    return exp, {
        "engine": run_engine,
        "numpy loop": numpy_loop,
        "per-step jit": per_step,
    }


def _numpy_seed(rates, starts, steps, window, rtol):
    """The engine's per-step bookkeeping and classification, for J = (w-2)^2+1.

    The rules and their constants are those of :mod:`dynamics.classify`, for
    one parameter (norms are absolute values).
    """
    from dynamics import classify

    regime_codes = classify.Regime
    eps, tiny = np.finfo(starts.dtype).eps, np.finfo(starts.dtype).tiny
    w = starts.copy()
    n = len(w)
    last_update = np.zeros_like(starts)
    last_moved = np.zeros(n, bool)
    diverged_at = np.full(n, -1)
    max_grad = np.zeros_like(starts)
    last_outside = np.full(n, -1)
    opposite = np.zeros(n, np.int64)
    pairs = np.zeros(n, np.int64)
    features = np.empty((window, n), starts.dtype)
    step_norms = np.empty((window, n), starts.dtype)
    initial_loss = (starts - 2) ** 2 + 1
    head = steps - window
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps):
            if t == head:
                window_start = w.copy()
                window_loss = (w - 2) ** 2 + 1
            loss = (w - 2) ** 2 + 1
            grad = 2 * (w - 2)
            update = -rates * grad
            finite = np.isfinite(loss) & np.isfinite(w)
            diverged_at[(diverged_at < 0) & ~finite] = t
            grad_norm = np.abs(grad)
            max_grad = np.fmax(max_grad, grad_norm)
            step_norm = np.abs(update)
            moved = step_norm > 8 * eps * np.abs(w)
            within = (grad_norm <= rtol * max_grad) | (
                ~moved & (grad_norm <= 0.5 * max_grad)
            )
            last_outside[~within] = t
            counted = moved & last_moved
            opposite += counted & (update * last_update < 0)
            pairs += counted
            w = w + update
            last_update, last_moved = update, moved
            if t >= head:
                features[t - head], step_norms[t - head] = w, step_norm
        final_loss = (w - 2) ** 2 + 1
        finite = np.isfinite(final_loss) & np.isfinite(w)
        diverged_at[(diverged_at < 0) & ~finite] = steps
        grad_norm = np.abs(2 * (w - 2))
        max_grad = np.fmax(max_grad, grad_norm)
        within = (grad_norm <= rtol * max_grad) | (
            ~last_moved & (grad_norm <= 0.5 * max_grad)
        )
        last_outside[~within] = steps
        quarter = max(window // 4, 1)
        settled = last_outside < steps - quarter

        scale = np.maximum(np.abs(starts), np.max(np.abs(features), axis=0))
        scale = np.where(np.isfinite(scale), scale, 0) + tiny

        def maxima(blocks):
            size = max(window // blocks, 1)
            return [
                np.max(
                    step_norms[
                        max(window - (blocks - i) * size, 0) : window
                        - (blocks - 1 - i) * size
                    ],
                    axis=0,
                )
                for i in range(blocks)
            ]

        q, e = maxima(4), maxima(8)
        shrinking = (
            (q[1] < q[0])
            & (q[2] < q[1])
            & (q[3] < q[2])
            & (q[3] < (1 - classify.DECAY) * q[0])
            & (q[3] * q[0] ** 0.5 <= q[2] * q[1] ** 0.5)
        )
        escaping = ((final_loss > window_loss) & (final_loss > initial_loss)) | (
            np.abs(w) > 2 * np.maximum(np.abs(window_start), np.abs(starts))
        )
        growing = escaping & np.all(np.diff(np.stack(e), axis=0) > 0, axis=0)
        growing &= e[-1] > (1 + classify.GROWTH) * e[0]
        at_rest = q[-1] <= 8 * eps * scale
        progressed = grad_norm <= 0.5 * max_grad
        drifting = np.abs(w - window_start) > classify.DRIFT * np.sum(
            step_norms, axis=0
        )
        nonfinite = diverged_at >= 0
        converged = ~nonfinite & (
            settled | (at_rest & progressed) | (~at_rest & shrinking)
        )
        searched = ~nonfinite & ~converged & ~at_rest

        # The period search, on the runs that need it (NumPy can index).
        period = np.zeros(n, np.int64)
        tolerance, floor = 1000 * eps * scale, 16 * eps * scale
        longest = min(classify.MAX_PERIOD, window - 2 * quarter)
        rows = np.flatnonzero(searched)
        f = features[:, rows]
        for p in range(2, longest + 1):

            def gap(end, p=p):
                return np.max(
                    np.abs(f[end - quarter : end] - f[end - quarter - p : end - p]),
                    axis=0,
                )

            last, previous = gap(window), gap(window - quarter)
            steady = (last <= (1 + classify.GROWTH) * previous) | (last <= floor[rows])
            match = (last <= tolerance[rows]) & steady & (period[rows] == 0)
            period[rows[match]] = p
        cycling = searched & (period >= 2)

    regime = np.full(n, int(regime_codes.OSCILLATING), np.int8)
    for holds, code in reversed(
        [
            (nonfinite, regime_codes.DIVERGED),
            (converged, regime_codes.CONVERGED),
            (at_rest, regime_codes.STALLED),
            (cycling, regime_codes.OSCILLATING),
            (growing, regime_codes.DIVERGED),
            (drifting, regime_codes.STALLED),
        ]
    ):
        regime[holds] = int(code)
    return regime


def network_methods(side, steps, dtype):
    import dynamics
    from dynamics import engine, models

    exp = dynamics.load_config(
        "configs/fractal_lr_lr.yaml",
        [
            f"steps={steps}",
            f"sweep.optimizer.learning_rate.0.num={side}",
            f"sweep.optimizer.learning_rate.1.num={side}",
            f"dtype={dtype}",
        ],
    )
    columns = engine.grid(exp)
    rates = np.stack(
        [columns[f"optimizer.learning_rate.{i}"] for i in (0, 1)], axis=1
    ).astype(dtype)
    settings = exp.config["objective"]
    width = settings["width"]
    problem, _ = engine._problem(exp.config, {}, np.dtype(dtype))
    inputs, targets = (np.asarray(a, dtype) for a in models.mlp_data(settings))
    start = [np.asarray(problem.params[f"layer{i}"]) for i in (0, 1)]
    first, second = start
    gain, root = 2.0**0.5, width**0.5  # Python floats: NumPy keeps the dtype

    def run_engine():
        return engine.simulate(exp)["regime"] == 2

    def numpy_loop(chunk=512):
        diverged = []
        with np.errstate(over="ignore", invalid="ignore"):
            for begin in range(0, len(rates), chunk):
                rate = rates[begin : begin + chunk]
                runs = len(rate)
                w0 = np.broadcast_to(first, (runs,) + first.shape).copy()
                w1 = np.broadcast_to(second, (runs,) + second.shape).copy()
                bad = np.zeros(runs, bool)
                for _ in range(steps):
                    pre = gain * np.einsum("nd,rdk->rnk", inputs, w0) / root
                    hidden = np.tanh(pre)
                    output = hidden @ w1 / width
                    residual = output - targets
                    bad |= ~np.isfinite(np.mean(residual**2, axis=(1, 2)))
                    d_output = 2 * residual / len(inputs)
                    g1 = np.swapaxes(hidden, 1, 2) @ d_output / width
                    d_hidden = d_output @ np.swapaxes(w1, 1, 2) / width
                    d_pre = d_hidden * (1 - hidden**2) * gain / root
                    g0 = np.einsum("nd,rnk->rdk", inputs, d_pre)
                    w0 -= rate[:, 0, None, None] * g0
                    w1 -= rate[:, 1, None, None] * g1
                diverged.append(bad)
        return np.concatenate(diverged)

    def dispatched(loss, chunk=4096):
        """One jitted step of a chunk of runs per training step, losses kept."""
        import jax
        import jax.numpy as jnp

        @jax.jit
        def step(params, rate):
            def one(p, r):
                value, grad = jax.value_and_grad(loss)(p)
                moved = [
                    w - r[i] * g for i, (w, g) in enumerate(zip(p, grad, strict=True))
                ]
                return moved, value

            return jax.vmap(one)(params, rate)

        diverged = []
        for begin in range(0, len(rates), chunk):
            rate = jnp.asarray(rates[begin : begin + chunk])
            params = [jnp.broadcast_to(w, (len(rate),) + w.shape) for w in start]
            losses = []
            for _ in range(steps):
                params, value = step(params, rate)
                losses.append(value)
            diverged.append(_diverged(np.stack(jax.device_get(losses), axis=1)))
        return np.concatenate(diverged) == 2

    def per_step():
        import jax.numpy as jnp

        def loss(params):  # the notebook's form: data by units
            hidden = jnp.tanh(gain * (inputs @ params[0]) / root)
            return jnp.mean((hidden @ params[1] / width - targets) ** 2)

        return dispatched(loss)

    def per_step_own():
        # This package's model (units by data): how much of the engine's lead
        # is the layout, which a notebook could adopt.
        return dispatched(lambda p: problem.loss({"layer0": p[0], "layer1": p[1]}))

    return exp, {
        "engine": run_engine,
        "numpy loop": numpy_loop,
        "per-step jit": per_step,
        "per-step jit, own model": per_step_own,
    }


def network_flops(side, steps):
    """Multiply-adds (x2) of the forward and backward passes of the sweep."""
    import dynamics
    from dynamics import models

    exp = dynamics.load_config("configs/fractal_lr_lr.yaml")
    settings = exp.config["objective"]
    width = settings["width"]
    points = len(models.mlp_data(settings)[0])
    forward = 2 * points * width * width + 2 * points * width
    # Backward: the gradients of both weight matrices and of the hidden units.
    return 3 * forward * side * side * steps


def _diverged(history):
    """The notebook's verdict from the kept losses: 2 diverged, 0 otherwise."""
    finite = np.all(np.isfinite(history), axis=1)
    return np.where(finite & (history[:, -1] <= history[:, 0]), 0, 2).astype(np.int8)


# One measurement, in a process of its own.


def measure_one(workload, side, steps, method, repeat, labels_path, dtype):
    if dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)  # for the per-step baseline
    build = {"seed": seed_methods, "network": network_methods}[workload]
    _, methods = build(side, steps, dtype)
    function = methods[method]
    started = time.perf_counter()
    labels = function()
    first = time.perf_counter() - started
    best = first  # with no repeat, the first run is the time (compile included)
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    np.save(labels_path, np.asarray(labels))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB
    print(
        json.dumps(
            {
                "warm": best,
                "compile": max(first - best, 0.0) if repeat else None,
                "peak_mb": peak,
            }
        )
    )


def in_child(arguments, environment=None):
    """Runs this script with ``arguments`` in a new process; its JSON line."""
    env = dict(os.environ, DYNAMICS_COMPILATION_CACHE="off", **(environment or {}))
    done = subprocess.run(
        [sys.executable, __file__, *arguments],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"benchmark child {arguments} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def matmul_peak(dtype):
    """The machine's matrix-multiply rate in ``dtype``, in FLOP/s, measured now."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", dtype == "float64")
    a = jnp.ones((2048, 2048), dtype)
    product = jax.jit(lambda x: x @ x)
    product(a).block_until_ready()
    best = np.inf
    for _ in range(5):
        started = time.perf_counter()
        product(a).block_until_ready()
        best = min(best, time.perf_counter() - started)
    return 2 * 2048**3 / best


def table(workloads, peak, dtype):
    print(
        "| workload | method | warm s | compile s | updates/s | of matmul peak "
        "| peak MiB | agrees | time / engine |\n|---|---|---|---|---|---|---|---|---|"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for workload, side, steps, repeats in workloads:
            name = f"{workload} {side}² × {steps}"
            rows = {}
            for method, repeat in repeats.items():
                labels = os.path.join(scratch, f"{workload}-{side}-{method}.npy")
                rows[method] = in_child(
                    [
                        "--one",
                        workload,
                        str(side),
                        str(steps),
                        method,
                        "--repeat",
                        str(repeat),
                        "--labels",
                        labels,
                        "--dtype",
                        dtype,
                    ]
                )
                rows[method]["labels"] = np.load(labels)
            engine_row = rows["engine"]
            for method, row in rows.items():
                updates = side * side * steps / row["warm"]
                share = ""
                if workload == "network":
                    share = f"{network_flops(side, steps) / row['warm'] / peak:.0%}"
                reference = engine_row["labels"]
                if workload == "seed" and method == "per-step jit":
                    reference = np.where(reference == 2, 2, 0)  # diverged or not
                agrees = f"{np.mean(row['labels'] == reference):.2%}"
                compiled = row["compile"]
                compiled = "in run" if compiled is None else f"{compiled:.2f}"
                print(
                    f"| {name} | {method} | {row['warm']:.3f} | {compiled} "
                    f"| {updates:.3g} | {share} | {row['peak_mb']:.0f} | {agrees} "
                    f"| {row['warm'] / engine_row['warm']:.1f} |",
                    flush=True,
                )


def first_figure():
    """Seconds from launching ``dynamics run`` to its first figure: cold, warm."""
    times = []
    with tempfile.TemporaryDirectory() as scratch:
        cache = os.path.join(scratch, "cache")
        for attempt in ("cold", "warm"):
            out = os.path.join(scratch, attempt)
            started = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, "-m", "dynamics", "run", "-o", out, "-q"],
                env=dict(os.environ, DYNAMICS_COMPILATION_CACHE=cache),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            seen = None
            while seen is None and process.poll() is None:
                if _png_under(scratch, attempt):
                    seen = time.perf_counter() - started
                time.sleep(0.01)
            process.wait()
            if process.returncode:
                raise SystemExit(process.stderr.read().decode()[-3000:])
            times.append(seen if seen is not None else time.perf_counter() - started)
    return times


def _png_under(scratch, attempt):
    """Whether a figure exists in the run ``attempt`` or in its staging folder."""
    for folder, _, names in os.walk(scratch):
        if attempt in os.path.relpath(folder, scratch) and any(
            name.endswith(".png") for name in names
        ):
            return True
    return False


def memory(side, steps):
    """Peak resident memory (MiB) and seconds of a whole ``dynamics run``.

    Compilation included, every time (no cache): it takes a hundred MiB or so,
    and a cached program for some step counts but not others would blur the
    comparison between them.
    """
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dynamics",
                "run",
                "-o",
                os.path.join(scratch, "run"),
                "-q",
                f"steps={steps}",
                f"sweep.optimizer.learning_rate.num={side}",
                f"sweep.start.w.num={side}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=dict(os.environ, DYNAMICS_COMPILATION_CACHE="off"),
        )
        _, status, usage = os.wait4(process.pid, 0)
        if status:
            raise SystemExit(process.stderr.read().decode()[-3000:])
        return usage.ru_maxrss / 1024, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--memory", action="store_true", help="also the 4096² run")
    parser.add_argument("--repeat", type=int, default=2, help="warm runs timed")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="of every run",
    )
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        workload, side, steps, method = args.one
        measure_one(
            workload,
            int(side),
            int(steps),
            method,
            args.repeat,
            args.labels,
            args.dtype,
        )
        return

    import jax

    peak = matmul_peak(args.dtype)
    print(
        f"devices: {', '.join(d.device_kind for d in jax.devices())}; runs in "
        f"{args.dtype}; {args.dtype} matmul peak {peak / 1e9:.0f} GFLOP/s"
    )
    every = dict.fromkeys(METHODS, args.repeat)
    network = every | {"per-step jit, own model": args.repeat}
    if args.quick:
        workloads = [("seed", 256, 200, every), ("network", 16, 100, network)]
    else:
        # The largest network takes the per-step baseline 20 minutes a run
        # here: it runs once (its compilation, 0.2 s, included), and the NumPy
        # loop (about an hour) not at all.
        largest = {"engine": 1, "per-step jit": 0}
        workloads = [
            ("seed", 1024, 200, every),
            ("network", 64, 100, network),
            ("network", 256, 500, largest),
        ]
    table(workloads, peak, args.dtype)
    cold, warm = first_figure()
    print(
        f"\nfirst figure of `dynamics run`: {cold:.1f} s with an empty "
        f"compilation cache, {warm:.1f} s with the cache filled"
    )
    if args.memory:
        print(
            "\n| seed run (whole `dynamics run`) | peak MiB | seconds |\n|---|---|---|"
        )
        for side, steps in ((1024, 200), (1024, 2000), (1024, 20000), (4096, 200)):
            peak_mb, seconds = memory(side, steps)
            print(f"| {side}² × {steps} | {peak_mb:.0f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
