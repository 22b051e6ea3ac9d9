"""The engine: one compilation per grid, chunking that changes nothing, float64."""

import contextlib

import jax
import numpy as np
import optax
import pytest

import dynamics
from dynamics import engine
from dynamics.config import load_config


@contextlib.contextmanager
def count_compilations():
    """Counts XLA backend compilations of jitted programs in the block."""
    events = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize("num", [3, 40_001])
def test_a_grid_compiles_once_however_many_values_it_holds(seed, num):
    seed["objective"]["expr"] = "(w - 2)**2 + 1 + 0 * w"  # a program no test ran
    seed["sweep"] = {
        "optimizer.learning_rate": {"linspace": [0.01, 1.2], "num": num},
        "start.w": [-1.0, 3.0],
    }
    seed["chunk_size"] = 1000 if num > 3 else None  # many chunks, last one padded
    exp = load_config(seed)
    with count_compilations() as compiled:
        engine.simulate(exp)
    assert len(compiled) == 1
    if num > 3:
        assert exp.n_runs % engine.chunk_size(exp) != 0


def test_hyperparameters_are_traced_not_baked_in(seed):
    seed["sweep"] = {"optimizer.learning_rate": [0.1, 0.2, 0.25]}
    first = load_config(seed)
    seed["sweep"] = {"optimizer.learning_rate": [0.3, 0.7, 1.5]}
    second = load_config(seed)
    engine.simulate(first)
    with count_compilations() as compiled:
        engine.simulate(second)
    assert len(compiled) == 0  # same program, other values: nothing recompiles


def test_chunking_and_padding_change_no_result(seed):
    seed["sweep"] = {
        "optimizer.learning_rate": {"linspace": [0.01, 1.2], "num": 37},
        "start.w": {"linspace": [-2.0, 6.0], "num": 11},
    }
    whole = dynamics.run(seed)
    seed["chunk_size"] = 50  # 407 runs: 9 chunks, the last padded
    chunked = dynamics.run(seed)
    for name in whole.data_vars:
        np.testing.assert_array_equal(whole[name].values, chunked[name].values)


def test_grid_is_the_product_in_the_order_written(seed):
    seed["sweep"] = {"start.w": [5.0, -1.0], "optimizer.learning_rate": [0.1, 1.5, 0.7]}
    ds = dynamics.run(seed)
    assert ds["regime"].dims == ("start.w", "optimizer.learning_rate")
    assert ds["start.w"].values.tolist() == [5.0, -1.0]
    assert ds["regime"].values.tolist() == [[0, 2, 0], [0, 2, 0]]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_switch_runs_the_whole_computation_in_that_precision(seed, dtype):
    seed["dtype"] = dtype
    seed["optimizer"]["learning_rate"] = 0.3
    seed["sweep"] = {"optimizer.learning_rate": [0.3]}
    seed["classify"] = {"rtol": 1e-12}
    ds = dynamics.run(seed)
    assert ds["final_loss"].dtype == np.dtype(dtype)
    assert ds["optimizer.learning_rate"].dtype == np.dtype(dtype)
    # |J'| = 0.4^t · 4 falls below 1e-12 · 4 at t = 31 in exact arithmetic; in
    # float32 the iterate lands exactly on 2 much sooner, at its resolution.
    steps = int(ds["steps_to_converge"][0])
    assert (steps == 31) if dtype == "float64" else (0 < steps < 31)
    path = engine.path(load_config(seed), steps=40).params["w"]
    assert path.dtype == np.dtype(dtype)
    if dtype == "float64":
        assert path[20] - 2.0 == pytest.approx(-2 * 0.4**20, rel=1e-9)
    else:
        assert abs(path[20] - 2.0) <= 4 * np.finfo(np.float32).eps


def test_a_single_run_takes_exactly_optaxs_steps(seed):
    seed["dtype"] = "float64"
    seed["optimizer"].update(learning_rate=0.3, momentum=0.8, nesterov=True)
    exp = load_config(seed)
    got = engine.path(exp, steps=25).params["w"]
    with jax.enable_x64(True):
        opt = optax.sgd(0.3, momentum=0.8, nesterov=True)
        w = jax.numpy.asarray(0.0, dtype="float64")
        state = opt.init(w)
        expected = [float(w)]
        for _ in range(25):
            g = jax.grad(lambda v: (v - 2) ** 2 + 1)(w)
            updates, state = opt.update(g, state, w)
            w = optax.apply_updates(w, updates)
            expected.append(float(w))
    np.testing.assert_array_equal(got, expected)


def test_no_sweep_is_a_single_run(seed):
    ds = dynamics.run(seed)
    assert ds["regime"].dims == ()
    assert int(ds["regime"]) == dynamics.Regime.CONVERGED
    assert int(ds["steps_to_converge"]) == 42  # 0.8^t <= 1e-4
