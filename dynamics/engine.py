"""The engine: a whole sweep as one jitted program, vmap over runs, scan over steps.

Every run of a sweep shares one program. The swept values enter it as traced
arrays, so a grid compiles once however many values it holds. Runs go through
in chunks of a fixed size (the last one padded), so memory does not grow with
the grid, and the scan carries only what classification needs: running counts,
the last ``W`` iterates and step norms, never the whole trajectory. Each
chunk is sharded over every local device. Importing this module turns on JAX's
persistent compilation cache (see :func:`compilation_cache`).

>>> from dynamics.config import load_config
>>> exp = load_config({"objective": {"expr": "(w - 2)**2 + 1"},
...                    "start": {"w": 0.0},
...                    "optimizer": {"name": "sgd", "learning_rate": 0.1},
...                    "sweep": {"optimizer.learning_rate": [0.25, 1.0, 1.5]}})
>>> [int(code) for code in simulate(exp)["regime"]]
[0, 1, 2]
"""

import copy
import functools
import json
import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from dynamics import classify, errors, objectives, optimizers, sharpness
from dynamics.config import Experiment
from dynamics.schema import substitute

#: Parameters up to this count are kept whole in the tail; more are projected.
MAX_FEATURES = 8
#: Bytes the per-run buffers of one chunk may take.
CHUNK_BYTES = 256 * 2**20
MAX_CHUNK = 16384
#: Parameters (all runs together) a chunk may hold: a network's step then
#: works within the caches (a width-16 network: 1.5x faster than in chunks
#: of 1024 runs).
CHUNK_PARAMETERS = 2**16

Progress = Callable[[int, int], None]
#: Where compiled programs are kept between runs: this variable's value, or
#: "off" for no cache; by default a folder in the user's cache directory.
CACHE_VARIABLE = "DYNAMICS_COMPILATION_CACHE"
# A per-run index, so that a config without a sweep still has a batch axis.
_RUN = "__run__"


class Path(NamedTuple):
    """One run's whole trajectory, for figures of a single run.

    Attributes:
      params: mapping from parameter name to an array of T + 1 iterates.
      loss: the loss at each iterate, T + 1 values.
    """

    params: dict
    loss: np.ndarray


def compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache; returns its folder.

    A second run of the same shapes, in a new process, then loads its program
    instead of compiling it. Set ``DYNAMICS_COMPILATION_CACHE`` to a folder, or
    to ``off``; a cache folder the user already gave JAX is kept.
    """
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    folder = os.environ.get(CACHE_VARIABLE)
    if folder == "off":
        return None
    if not folder:
        root = os.environ.get("XDG_CACHE_HOME") or os.path.join(
            os.path.expanduser("~"), ".cache"
        )
        folder = os.path.join(root, "dynamics", "jax")
    jax.config.update("jax_compilation_cache_dir", folder)
    # Sweeps of small objectives compile in well under JAX's default second.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    return folder


def grid(exp: Experiment) -> dict[str, np.ndarray]:
    """The swept values of every run, flattened in C order (first key slowest)."""
    if not exp.sweep:
        return {}
    mesh = np.meshgrid(*(axis.values for axis in exp.sweep), indexing="ij")
    return {
        axis.key: values.ravel() for axis, values in zip(exp.sweep, mesh, strict=True)
    }


def simulate(
    exp: Experiment,
    progress: Progress | None = None,
    points: dict[str, np.ndarray] | None = None,
    sink: Callable[[int, dict], None] | None = None,
    chunk: int | None = None,
    only: Sequence[int] | None = None,
) -> dict[str, np.ndarray] | None:
    """Runs every point of the sweep and returns per-run summaries.

    Args:
      exp: a checked experiment.
      progress: called as ``progress(done, total)`` after each chunk.
      points: instead of the grid, these runs: one equal-length array of
        values per sweep key (zoom and adaptive refinement pick their own).
      sink: if given, called as ``sink(chunk_index, summaries)`` with each
        chunk's results instead of collecting them; then returns ``None``.
      chunk: runs per chunk (default: :func:`chunks`); a resumed sweep keeps
        the chunks it was stored in.
      only: run only the chunks with these numbers: those a resumed sweep
        still lacks, or one process's share of a multi-process run.

    The runs of each chunk are sharded over every local device
    (``jax.local_devices()``); the results do not depend on how many there
    are. Memory does not grow with the step count, and the results are
    written into arrays allocated once, so a sweep takes little more than
    their size.

    Returns:
      Flat arrays of length ``exp.n_runs``, or of the points (C order over
      the sweep axes):
      ``regime``, ``period``, ``overshoot``, ``initial_loss``, ``final_loss``,
      ``max_loss``, ``steps_to_converge`` and ``diverged_at``.
    """
    dtype = np.dtype(exp.dtype)
    columns = None if points is None else _points(exp, points)
    total = len(next(iter(columns.values()))) if columns else exp.n_runs
    chunk = chunk or _chunk(exp, total)
    padded = _on_devices(chunk)
    program, sharding = _compiled(exp, padded)
    results = {}
    wanted = None if only is None else set(only)
    mine = [
        (number, begin)
        for number, begin in enumerate(range(0, total, chunk))
        if wanted is None or number in wanted
    ]
    todo = sum(min(chunk, total - begin) for _, begin in mine)
    done = 0
    with jax.enable_x64(dtype == np.float64):
        for number, begin in mine:
            errors.check_stop()
            runs = np.arange(begin, min(begin + chunk, total))
            values = (
                grid_values(exp, runs)
                if columns is None
                else {key: column[runs] for key, column in columns.items()}
            )
            block = {
                key: _padded(value.astype(dtype), padded)
                for key, value in values.items()
            }
            block[_RUN] = _padded(runs.astype(np.int32), padded)
            piece = jax.device_get(program(jax.device_put(block, sharding)))
            size = min(chunk, total - begin)
            piece = {name: value[:size] for name, value in piece.items()}
            if sink is not None:
                sink(number, piece)
            else:
                for name, value in piece.items():
                    if name not in results:
                        results[name] = np.empty(
                            (total,) + value.shape[1:], value.dtype
                        )
                    results[name][begin : begin + size] = value
            done += size
            if progress:
                progress(done, todo)
    return None if sink is not None else results


def grid_values(exp: Experiment, runs: np.ndarray) -> dict[str, np.ndarray]:
    """The swept values of the runs numbered ``runs`` (C order over the grid),
    without building the whole grid."""
    if not exp.sweep:
        return {}
    where = np.unravel_index(runs, tuple(len(axis.values) for axis in exp.sweep))
    return {axis.key: axis.values[i] for axis, i in zip(exp.sweep, where, strict=True)}


def outputs(exp: Experiment) -> dict[str, jax.ShapeDtypeStruct]:
    """The per-run arrays :func:`simulate` returns: shape after the run axis, dtype."""
    dtype = np.dtype(exp.dtype)
    chunk = _chunk(exp, exp.n_runs)
    with jax.enable_x64(dtype == np.float64):
        program = _program(_structure(exp), chunk)
        block = {axis.key: jax.ShapeDtypeStruct((chunk,), dtype) for axis in exp.sweep}
        block[_RUN] = jax.ShapeDtypeStruct((chunk,), np.int32)
        shapes = jax.eval_shape(program, block)
    return {
        name: jax.ShapeDtypeStruct(shape.shape[1:], shape.dtype)
        for name, shape in shapes.items()
    }


def chunks(exp: Experiment) -> tuple[int, int]:
    """``(runs per chunk, number of chunks)`` that :func:`simulate` uses."""
    chunk = _chunk(exp, exp.n_runs)
    return chunk, -(-exp.n_runs // chunk)


def _chunk(exp, total):
    return _on_devices(chunk_size(exp, total))


def _on_devices(chunk):
    # Every chunk is split evenly over the local devices: round it up to a
    # multiple of their count (the padding repeats the last run).
    devices = len(jax.local_devices())
    return -(-chunk // devices) * devices


def _compiled(exp, chunk):
    """The chunk's program (traced on its first call) and its sharding."""
    sharding = jax.sharding.NamedSharding(
        jax.sharding.Mesh(np.array(jax.local_devices()), ("runs",)),
        jax.sharding.PartitionSpec("runs"),
    )
    return _program(_structure(exp), chunk), sharding


def chunk_size(exp: Experiment, runs: int | None = None) -> int:
    """Runs per chunk: the config's ``chunk_size``, else what fits the budget."""
    runs = exp.n_runs if runs is None else runs
    if exp.config["chunk_size"]:
        return min(exp.config["chunk_size"], max(runs, 1))
    window = min(exp.steps, exp.config["classify"]["window"])
    size = len(parameter_names(exp))
    features = min(size, MAX_FEATURES)
    analysis = exp.config["analysis"]
    words = window * (features + 1) + 8 * size + 16  # the tail and the orbit
    words += 3 * size if analysis["lyapunov"] else 0  # the tangent
    if analysis["sharpness"]:  # the Lanczos basis
        words += (analysis["sharpness_iterations"] + 2) * size
    per_run = np.dtype(exp.dtype).itemsize * words
    limit = min(MAX_CHUNK, CHUNK_BYTES // per_run, CHUNK_PARAMETERS // size)
    limit = max(64, limit)
    chunks = max(-(-runs // limit), 1)
    return max(-(-runs // chunks), 1)


def parameter_names(exp: Experiment) -> list[str]:
    """Names of the flattened parameters, in the order of ``final`` vectors."""
    dtype = np.dtype(exp.dtype)
    with jax.enable_x64(dtype == np.float64):
        shapes = jax.eval_shape(lambda: _problem(exp.config, {}, dtype)[0].params)
    names = []
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
        name = ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in key_path)
        if leaf.shape == ():
            names.append(name)
        else:
            names += [f"{name}[{i}]" for i in range(int(np.prod(leaf.shape)))]
    return names


def path(exp: Experiment, steps: int | None = None) -> Path:
    """The trajectory of the unswept run: the config's own start and optimizer."""
    dtype = np.dtype(exp.dtype)
    steps = exp.steps if steps is None else steps
    with jax.enable_x64(dtype == np.float64):
        problem, opt = _problem(exp.config, {}, dtype)
        loss_fn, params0 = problem.loss, problem.params
        gradient = problem.gradient()

        def step(carry, t):
            params, state = carry
            loss, grad = gradient(params, t)
            updates, state = opt.update(grad, state, params)
            return (optax.apply_updates(params, updates), state), (params, loss)

        @jax.jit
        def run(params):
            (last, _), (history, losses) = jax.lax.scan(
                step, (params, opt.init(params)), jnp.arange(steps, dtype=jnp.int32)
            )
            history = jax.tree.map(
                lambda h, x: jnp.concatenate([h, x[None]]), history, last
            )
            return history, jnp.append(losses, loss_fn(last))

        history, losses = run(params0)
        return Path(
            params={k: np.asarray(v) for k, v in history.items()},
            loss=np.asarray(losses),
        )


# The program.


def _structure(exp):
    """A hashable description of everything the compiled program depends on."""
    base = copy.deepcopy(exp.config)
    base.pop("sweep")
    base.pop("name")
    base.pop("figures")
    # A swept value is replaced in every run, so its base value is no part of
    # the program: configs that differ only there share one compilation.
    base = substitute(base, {axis.key: None for axis in exp.sweep})
    return json.dumps(
        {"config": base, "swept": [axis.key for axis in exp.sweep]}, sort_keys=True
    )


@functools.lru_cache(maxsize=16)
def _program(structure, chunk):
    description = json.loads(structure)
    config, swept = description["config"], description["swept"]
    dtype = np.dtype(config["dtype"])
    rtol = config["classify"]["rtol"]
    steps = config["steps"]
    window = min(steps, config["classify"]["window"])

    analysis = config["analysis"]

    def run_one(values):
        values = {key: value for key, value in values.items() if key != _RUN}
        problem, opt = _problem(config, values, dtype)
        return _simulate_one(problem, opt, steps, window, rtol, analysis)

    def run_chunk(values):
        tail, out = jax.vmap(run_one)({key: values[key] for key in swept + [_RUN]})
        return _verdicts(tail, out, steps)

    return jax.jit(run_chunk)


def _problem(config, values, dtype):
    """The problem and optimizer, with swept values put in."""
    config = substitute(config, values)
    return objectives.build(config, dtype), optimizers.build(config["optimizer"], dtype)


class _Carry(NamedTuple):
    params: dict
    state: optax.OptState
    last_direction: dict
    last_moved: jnp.ndarray
    diverged_at: jnp.ndarray
    max_grad: jnp.ndarray
    last_outside: jnp.ndarray
    opposite_pairs: jnp.ndarray
    pairs: jnp.ndarray
    max_loss: jnp.ndarray
    tangent: list
    tangent_params: jnp.ndarray  # the squared size of its parameter part
    log_growth: jnp.ndarray
    eigenvector: dict
    sharpness: jnp.ndarray
    max_sharpness: jnp.ndarray


def _simulate_one(problem, opt, steps, window, rtol, analysis):
    """One run: ``steps`` updates, then its summaries and verdict."""
    params0 = problem.params
    flat0, _ = ravel_pytree(params0)
    dtype = flat0.dtype
    eps = jnp.finfo(dtype).eps
    tiny = jnp.finfo(dtype).tiny
    project = _projection(flat0.shape[0], dtype)
    gradient = problem.gradient()
    value_and_grad = jax.value_and_grad(problem.loss)

    def within_tolerance(grad_norm, max_grad, moved):
        return (grad_norm <= rtol * max_grad) | (~moved & (grad_norm <= 0.5 * max_grad))

    def advance(params, state, t):
        loss, grad = gradient(params, t)
        updates, state = opt.update(grad, state, params)
        return (optax.apply_updates(params, updates), state), (loss, grad, updates)

    lyapunov = analysis["lyapunov"]
    # The exponent is averaged over the second half, once transients are gone.
    average_from = steps - steps // 2
    state0 = opt.init(params0)
    tangent0 = _unit_tangent(params0, state0) if lyapunov else []
    # The perturbation is measured by what it does to the parameters over two
    # steps, never by the optimizer state's own numbers: a momentum is in the
    # gradient's units, so weighing it directly would make the exponent change
    # when J is scaled by c and the learning rate by 1/c, though every
    # iterate is the same number.
    in_params = len([leaf for leaf in jax.tree.leaves(params0) if _floating(leaf)])

    def squares(tangent):
        """Squared sizes of ``tangent``'s parameter part and of the rest."""
        each = [jnp.sum(jnp.square(v)) for v in tangent]
        return sum(each[:in_params]), sum(each[in_params:])

    def seen(own, image):
        """Log of a tangent's size as the parameters see it, from the squared
        size of its own parameter part and that of its image one step on."""
        return 0.5 * jnp.log(jnp.maximum(own + image, tiny))

    measure_sharpness = analysis["sharpness"]
    every = analysis["sharpness_every"]
    iterations = analysis["sharpness_iterations"]

    def top(params, vector):
        return sharpness.top_eigenvalue(
            problem.loss, params, iterations=iterations, vector=vector
        )

    def step(carry, t):
        if measure_sharpness:
            # The step counter is the same for every run of a chunk, so this
            # stays a real branch under vmap: the work is done every k steps.
            value, vector = jax.lax.cond(
                t % every == 0,
                lambda: top(carry.params, carry.eigenvector),
                lambda: (carry.sharpness, carry.eigenvector),
            )
            carry = carry._replace(
                eigenvector=vector,
                sharpness=value,
                max_sharpness=_larger(carry.max_sharpness, value),
            )
        if lyapunov:
            # Forward mode pushes one perturbation of the whole optimizer state
            # (parameters, momenta, moments) through the step's Jacobian.
            (params, state), tangent, (loss, grad, updates) = _pushforward(
                lambda p, s: advance(p, s, t), carry.params, carry.state, carry.tangent
            )
            image_params, image_state = squares(tangent)
            size = jnp.sqrt(image_params + image_state)
            # Renormalizing by the whole size keeps the numbers in range; the
            # growth between two measures of the same kind (``seen``) at the
            # window's ends telescopes through it. The squares are the ones
            # the size needs: the window's start costs no extra pass.
            start = seen(carry.tangent_params, image_params)
            log_growth = (
                carry.log_growth
                + jnp.where(t >= average_from, jnp.log(size), 0.0)
                - jnp.where(t == average_from, start, 0.0)
            )
            usable = (size > 0) & jnp.isfinite(size)
            tangent = [
                jnp.where(usable, v / jnp.where(usable, size, 1.0), v0)
                for v, v0 in zip(tangent, tangent0, strict=True)
            ]
            tangent_params = jnp.where(usable, image_params / size**2, 1.0)
        else:
            (params, state), (loss, grad, updates) = advance(
                carry.params, carry.state, t
            )
            tangent, log_growth = carry.tangent, carry.log_growth
            tangent_params = carry.tangent_params

        param_norm = optax.tree.norm(carry.params)
        finite = jnp.isfinite(loss) & _all_finite(carry.params)
        diverged_at = jnp.where((carry.diverged_at < 0) & ~finite, t, carry.diverged_at)

        grad_norm = optax.tree.norm(grad)
        max_grad = _larger(carry.max_grad, grad_norm)
        step_norm = optax.tree.norm(updates)
        moved = step_norm > 8 * eps * param_norm
        outside = ~within_tolerance(grad_norm, max_grad, moved)

        counted = moved & carry.last_moved
        # Unit vectors first: the product of two tiny steps would underflow.
        direction = jax.tree.map(lambda u: u / jnp.maximum(step_norm, tiny), updates)
        opposite = counted & (optax.tree.vdot(direction, carry.last_direction) < 0)
        new = _Carry(
            params=params,
            state=state,
            last_direction=direction,
            last_moved=moved,
            diverged_at=diverged_at,
            max_grad=max_grad,
            last_outside=jnp.where(outside, t, carry.last_outside),
            opposite_pairs=carry.opposite_pairs + opposite,
            pairs=carry.pairs + counted,
            max_loss=_larger(carry.max_loss, loss),
            tangent=tangent,
            tangent_params=tangent_params,
            log_growth=log_growth,
            eigenvector=carry.eigenvector,
            sharpness=carry.sharpness,
            max_sharpness=carry.max_sharpness,
        )
        flat_next, _ = ravel_pytree(params)
        return new, (project(flat_next), step_norm, orbit_value(carry.params, loss))

    orbit = analysis["orbit"]

    def orbit_value(params, loss):
        if orbit is None:
            return jnp.zeros((0,), dtype)
        return (loss if orbit == "loss" else params[orbit]).reshape(1).astype(dtype)

    zero = jnp.zeros((), jnp.int32)
    carry = _Carry(
        params=params0,
        state=state0,
        last_direction=jax.tree.map(jnp.zeros_like, params0),
        last_moved=jnp.zeros((), bool),
        diverged_at=zero - 1,
        max_grad=jnp.zeros((), dtype),
        last_outside=zero - 1,
        opposite_pairs=zero,
        pairs=zero,
        max_loss=jnp.full((), -jnp.inf, dtype),
        tangent=tangent0,
        tangent_params=jnp.ones((), dtype),  # its parameter part is all of it
        log_growth=jnp.zeros((), dtype),
        eigenvector=jax.tree.map(jnp.zeros_like, params0) if measure_sharpness else {},
        sharpness=jnp.full((), jnp.nan, dtype),
        max_sharpness=jnp.full((), -jnp.inf, dtype),
    )
    # A few parameters per run make each step a handful of cheap passes over
    # the chunk; unrolled, XLA fuses consecutive steps and the loop's own
    # overhead is paid a quarter as often (a fifth off the seed sweep).
    unroll = 4 if flat0.shape[0] <= MAX_FEATURES else 1
    head = steps - window
    if head:
        carry, _ = jax.lax.scan(
            lambda c, t: (step(c, t)[0], None),
            carry,
            jnp.arange(head, dtype=jnp.int32),
            unroll=unroll,
        )
    window_start, _ = ravel_pytree(carry.params)
    window_loss = problem.loss(carry.params)
    initial_loss = problem.loss(params0)
    # A start where the loss or its gradient is already not finite diverges at
    # step 0 for want of a number, not by growing: flagged apart.
    nonfinite_start = ~(
        jnp.isfinite(initial_loss) & _all_finite(jax.grad(problem.loss)(params0))
    )

    def watched(state, t):
        """A step of the window: also the largest step in each quarter and
        eighth of it, their sum, and the largest iterate."""
        carry, blocks, path, reach = state
        carry, (feature, step_norm, orbit) = step(carry, t)
        position = t - head
        blocks = [
            jnp.where(
                jnp.arange(count) == (position - (window - count * size)) // size,
                jnp.maximum(maxima, step_norm),
                maxima,
            )
            for maxima, (count, size) in zip(blocks, _blocks(window), strict=True)
        ]
        reach = jnp.maximum(reach, jnp.linalg.norm(feature))
        return (carry, blocks, path + step_norm, reach), (feature, orbit)

    lowest = jnp.full((), -jnp.inf, dtype)
    blocks = [jnp.full((count,), -jnp.inf, dtype) for count, _ in _blocks(window)]
    (carry, (quarters, eighths), path, reach), (features, orbit_values) = jax.lax.scan(
        watched,
        (carry, blocks, jnp.zeros((), dtype), lowest),
        jnp.arange(head, steps, dtype=jnp.int32),
        unroll=unroll,
    )

    final_loss, final_grad = value_and_grad(carry.params)
    final, _ = ravel_pytree(carry.params)
    finite = jnp.isfinite(final_loss) & jnp.all(jnp.isfinite(final))
    diverged_at = jnp.where((carry.diverged_at < 0) & ~finite, steps, carry.diverged_at)
    grad_norm = optax.tree.norm(final_grad)
    max_grad = _larger(carry.max_grad, grad_norm)
    outside = ~within_tolerance(grad_norm, max_grad, carry.last_moved)
    last_outside = jnp.where(outside, steps, carry.last_outside)

    exponent = None
    if lyapunov:
        _, image, _ = _pushforward(
            lambda p, s: advance(p, s, steps), carry.params, carry.state, carry.tangent
        )
        log_growth = carry.log_growth + seen(carry.tangent_params, squares(image)[0])
        exponent = jnp.where(
            diverged_at >= 0, jnp.nan, log_growth / (steps - average_from)
        )
    tail = classify.Tail(
        features=features,
        quarters=quarters,
        eighths=eighths,
        path_length=path,
        reach=reach,
        start_norm=jnp.linalg.norm(project(flat0)),
        displacement=jnp.linalg.norm(final - window_start),
        escaping=((final_loss > window_loss) & (final_loss > initial_loss))
        | (
            jnp.linalg.norm(final)
            > 2 * jnp.maximum(jnp.linalg.norm(window_start), jnp.linalg.norm(flat0))
        ),
        diverged_at=diverged_at,
        final_grad=grad_norm,
        max_grad=max_grad,
        opposite_pairs=carry.opposite_pairs,
        pairs=carry.pairs,
        settled=last_outside < steps - max(window // 4, 1),
        lyapunov=exponent,
    )
    out = {
        "nonfinite_start": nonfinite_start,
        "initial_loss": initial_loss,
        "final_loss": final_loss,
        "max_loss": _larger(carry.max_loss, final_loss),
        "diverged_at": diverged_at,
        "last_outside": last_outside,
    }
    if lyapunov:
        out["lyapunov"] = exponent
    if measure_sharpness:
        final_sharpness, _ = top(carry.params, carry.eigenvector)
        out["sharpness"] = final_sharpness
        out["max_sharpness"] = _larger(carry.max_sharpness, final_sharpness)
    if orbit is not None:
        out["orbit"] = orbit_values[:, 0]
    if analysis["basins"] and final.shape[0] <= MAX_FEATURES:
        out["final"] = final
    return tail, out


def _verdicts(tail, out, steps):
    """Classifies a whole chunk at once, so that work only some runs need (the
    search for a period) is skipped when none of them needs it."""
    # Time first, so that every rule reads whole rows of runs.
    tail = tail._replace(
        features=jnp.moveaxis(tail.features, 1, 0),
        quarters=jnp.moveaxis(tail.quarters, 1, 0),
        eighths=jnp.moveaxis(tail.eighths, 1, 0),
    )
    verdict = classify.classify(tail)
    last_outside = out.pop("last_outside")
    reached = (verdict.regime == classify.Regime.CONVERGED) & (last_outside < steps)
    out |= {
        "regime": verdict.regime,
        "period": verdict.period,
        "overshoot": verdict.overshoot,
        "steps_to_converge": jnp.where(reached, last_outside + 1, -1),
    }
    if "lyapunov" in out:
        out["chaotic"] = classify.chaotic(
            verdict.regime, verdict.period, out["lyapunov"]
        )
    return out


def _blocks(window):
    """(count, size) of the quarters and eighths that end a window of W steps
    (W ≥ 8: any steps before the first block count in neither)."""
    return [(count, window // count) for count in (4, 8)]


def _unit_tangent(params, state):
    """A fixed pseudo-random unit vector over the floating leaves of
    ``(params, state)``, zero in the state: a perturbation of the parameters
    alone, which means the same thing whatever the units of the state."""
    floating = [leaf for leaf in jax.tree.leaves(params) if _floating(leaf)]
    rng = np.random.default_rng(1)
    vectors = [rng.standard_normal(np.shape(leaf)) for leaf in floating]
    size = np.sqrt(sum(np.sum(np.square(v)) for v in vectors))
    return [
        jnp.asarray(v / size, jnp.result_type(leaf))
        for v, leaf in zip(vectors, floating, strict=True)
    ] + [
        jnp.zeros(np.shape(leaf), jnp.result_type(leaf))
        for leaf in jax.tree.leaves(state)
        if _floating(leaf)
    ]


def _pushforward(advance, params, state, tangent):
    """``advance(params, state)`` and the image of ``tangent`` under its Jacobian.

    Only floating leaves are perturbed: step counters in optimizer states are
    integers and have no tangent.
    """
    leaves, treedef = jax.tree.flatten((params, state))
    where = [i for i, leaf in enumerate(leaves) if _floating(leaf)]

    def flow(floats):
        full = list(leaves)
        for i, value in zip(where, floats, strict=True):
            full[i] = value
        new, aux = advance(*jax.tree.unflatten(treedef, full))
        new_leaves = jax.tree.leaves(new)
        return [new_leaves[i] for i in where], (new, aux)

    _, image, (new, aux) = jax.jvp(
        flow, ([leaves[i] for i in where],), (tangent,), has_aux=True
    )
    return new, image, aux


def _floating(leaf):
    return jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


def _projection(size, dtype):
    """Identity for a few parameters; a fixed random projection for many."""
    if size <= MAX_FEATURES:
        return lambda flat: flat
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((MAX_FEATURES, size)) / np.sqrt(size)
    matrix = jnp.asarray(matrix, dtype)
    return lambda flat: matrix @ flat


def _points(exp, points):
    keys = [axis.key for axis in exp.sweep]
    if sorted(points) != sorted(keys):
        raise ValueError(f"points must give exactly the sweep keys {keys}")
    lengths = {len(np.atleast_1d(column)) for column in points.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError("points must be non-empty arrays of one length")
    return {key: np.atleast_1d(points[key]) for key in keys}


def _padded(column, size):
    if len(column) == size:
        return column
    return np.concatenate([column, np.repeat(column[-1:], size - len(column))])


def _larger(largest, value):
    """The running maximum, skipping NaN like ``jnp.fmax`` (which XLA's CPU
    backend makes several times dearer in a step loop)."""
    return jnp.where(value > largest, value, largest)


def _all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.stack(leaves).all()


compilation_cache()
