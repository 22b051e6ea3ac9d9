"""Sweeps sharded over several devices give the single-device results.

The CPU is split into four host devices by XLA's flag, in a fresh process
(the flag is read once, when JAX starts).
"""

import os
import subprocess
import sys
import textwrap

import numpy as np

import dynamics
from dynamics import engine

OVERRIDES = [
    "sweep.optimizer.learning_rate.num=37",
    "sweep.start.w.num=11",
    "chunk_size=50",  # not a multiple of 4: every chunk is padded
    "analysis.sharpness=true",
]

SHARDED = textwrap.dedent(
    """
    import sys
    import jax
    import numpy as np
    import dynamics
    from dynamics import engine

    assert jax.device_count() == 4, jax.devices()
    exp = dynamics.load_config(None, sys.argv[2:])
    out = engine.simulate(exp)
    # The compiled program really splits a chunk over the four devices.
    program = engine._program(engine._structure(exp), 52)
    block = {key: np.zeros(52, np.float32) for key in engine.grid(exp)}
    block[engine._RUN] = np.arange(52, dtype=np.int32)
    sharding = jax.sharding.NamedSharding(
        jax.sharding.Mesh(np.array(jax.devices()), ("runs",)),
        jax.sharding.PartitionSpec("runs"),
    )
    result = program(jax.device_put(block, sharding))
    assert len(result["regime"].sharding.device_set) == 4
    np.savez(sys.argv[1], **out)
    """
)


def test_four_host_devices_give_the_single_device_results(tmp_path):
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED)
    saved = tmp_path / "sharded.npz"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    done = subprocess.run(
        [sys.executable, str(script), str(saved), *OVERRIDES],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    sharded = np.load(saved)
    single = engine.simulate(dynamics.load_config(None, OVERRIDES))
    assert sorted(sharded.files) == sorted(single)
    for name in sharded.files:
        np.testing.assert_array_equal(sharded[name], single[name], err_msg=name)


CACHED = textwrap.dedent(
    """
    import sys
    import jax
    import dynamics
    from dynamics import engine

    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **kw: hits.append(event)
        if event == "/jax/compilation_cache/cache_hits"
        else None
    )
    assert engine.compilation_cache() == sys.argv[1]
    engine.simulate(dynamics.load_config(None, ["sweep.start.w.num=7"]))
    print(len(hits))
    """
)


def test_a_second_process_loads_the_program_instead_of_compiling(tmp_path):
    script = tmp_path / "cached.py"
    script.write_text(CACHED)
    cache = tmp_path / "cache"
    env = dict(os.environ, DYNAMICS_COMPILATION_CACHE=str(cache))

    def cache_hits():
        done = subprocess.run(
            [sys.executable, str(script), str(cache)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return int(done.stdout.split()[-1])

    assert cache_hits() == 0 and any(cache.iterdir())  # compiled, and kept
    assert cache_hits() == 1  # the sweep's program comes from the cache
