"""Speed of the engine against the two usual ways of running a sweep.

    python scripts/benchmark.py            # the issue's sizes (minutes on 2 cores)
    python scripts/benchmark.py --quick    # small sizes, for a look

Each workload runs, in this one process and on this machine:

- the engine: ``dynamics.engine.simulate``, classification included;
- a NumPy loop vectorized over the grid doing the same updates, with a
  minimal classification (finite, within tolerance at the end, else bounded);
- one jitted step dispatched from Python per training step, keeping every loss
  (the approach of the fractal-boundary notebook).

Times are the best of ``--repeat`` warm runs; compilation is timed apart.
The table reports updates per second and each baseline's time over the
engine's: ratios, because the machine is shared and noisy.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import dynamics
from dynamics import engine, optimizers


def seed_workload(side, steps):
    exp = dynamics.load_config(
        None,
        [
            f"steps={steps}",
            f"sweep.optimizer.learning_rate.num={side}",
            f"sweep.start.w.num={side}",
            "analysis.lyapunov=false",
            "analysis.basins=false",
        ],
    )
    columns = engine.grid(exp)
    rates = columns["optimizer.learning_rate"].astype(np.float32)
    starts = columns["start.w"].astype(np.float32)

    def numpy_loop():
        w = starts.copy()
        largest = np.zeros_like(w)
        grad = np.zeros_like(w)
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(steps):
                grad = 2 * (w - 2)
                largest = np.fmax(largest, np.abs(grad))
                w = w - rates * grad
            finite = np.isfinite(w)
            converged = finite & (np.abs(grad) <= 1e-4 * largest)
        return np.where(~finite, 2, np.where(converged, 0, 1))

    return exp, numpy_loop, None


def network_workload(side, steps):
    exp = dynamics.load_config(
        "configs/fractal_lr_lr.yaml",
        [
            f"steps={steps}",
            f"sweep.optimizer.learning_rate.0.num={side}",
            f"sweep.optimizer.learning_rate.1.num={side}",
        ],
    )
    columns = engine.grid(exp)
    rates = np.stack(
        [columns[f"optimizer.learning_rate.{i}"] for i in (0, 1)], axis=1
    ).astype(np.float32)
    problem, _ = engine._problem(exp.config, {}, np.dtype("float32"))
    loss = problem.loss
    groups = {k: int(g) for k, g in optimizers.group_labels(problem.params).items()}

    @jax.jit
    def step(params, rate):
        def one(p, r):
            value, grad = jax.value_and_grad(loss)(p)
            return {k: p[k] - r[groups[k]] * grad[k] for k in p}, value

        return jax.vmap(one)(params, rate)

    def dispatched():
        params = jax.tree.map(
            lambda x: jnp.broadcast_to(x, (len(rates),) + x.shape), problem.params
        )
        rate = jnp.asarray(rates)
        losses = []
        for _ in range(steps):
            params, value = step(params, rate)
            losses.append(value)
        history = np.stack(jax.device_get(losses), axis=1)  # every loss, kept
        return np.isfinite(history[:, -1])

    return exp, None, dispatched


def timed(function, repeat):
    best = np.inf
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def measure(name, exp, numpy_loop, dispatched, repeat):
    runs, steps = exp.n_runs, exp.steps
    started = time.perf_counter()
    engine.simulate(exp)  # the first call compiles
    first = time.perf_counter() - started
    warm = timed(lambda: engine.simulate(exp), repeat)
    rows = [(name, "engine", warm, first - warm)]
    for label, baseline in (("numpy loop", numpy_loop), ("per-step jit", dispatched)):
        if baseline is not None:
            baseline()  # warms any compilation
            rows.append((name, label, timed(baseline, repeat), None))
    for workload, method, seconds, compile_seconds in rows:
        compiled = "" if compile_seconds is None else f"{compile_seconds:8.2f}"
        print(
            f"| {workload} | {method} | {seconds:8.3f} | {compiled:>8} | "
            f"{runs * steps / seconds:12.3g} | {seconds / warm:6.1f} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--repeat", type=int, default=2, help="warm runs timed")
    args = parser.parse_args()
    seed = (256, 200) if args.quick else (1024, 200)
    network = (16, 100) if args.quick else (64, 100)
    print(f"devices: {jax.devices()}")
    print(
        "| workload | method | warm s | compile s | updates/s | time / engine |\n"
        "|---|---|---|---|---|---|"
    )
    name = f"seed {seed[0]}² × {seed[1]}"
    measure(name, *seed_workload(*seed), args.repeat)
    name = f"network {network[0]}² × {network[1]}"
    measure(name, *network_workload(*network), args.repeat)


if __name__ == "__main__":
    main()
