"""Optimizers from config: any optax optimizer, with traced hyperparameters.

Every optimizer constructor of optax (``optax.sgd``, ``optax.adam``, ...) is
available by its name. Its numeric hyperparameters are read from its signature
and may be swept: :func:`build` is called inside the traced simulation, so a
hyperparameter may be a traced scalar and a whole sweep compiles once (the
same effect as ``optax.inject_hyperparams``, without the extra state).

The learning rate may be

- a number;
- a list, one rate per parameter group in order (``optimizer.learning_rate.0``
  sweeps the first), built with ``optax.multi_transform``;
- either of these times a schedule, ``optimizer.schedule``, a multiplier
  s(t) of the step count t = 0, 1, ... (see :data:`SCHEDULES`).

Conventions are optax's; the README states each optimizer's update rule.
"""

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax.numpy as jnp
import optax


class Hyperparameter(NamedTuple):
    """One optimizer setting.

    Attributes:
      kind: ``"number"`` (sweepable), ``"integer"`` or ``"bool"`` (fixed per
        config), or ``"learning_rate"`` (a number or a list of numbers).
      default: the value when the config leaves it out (None: optax's default).
      required: whether the config must give it.
      check: returns why a value is out of range, or None when it is fine.
    """

    kind: str
    default: Any = None
    required: bool = False
    check: Callable[[float], str | None] | None = None


class OptimizerSpec(NamedTuple):
    make: Callable[..., optax.GradientTransformation]
    hyperparameters: dict[str, Hyperparameter]


def non_negative(value):
    return None if value >= 0 else "is negative; it must be at least 0"


def decay_factor(value):
    if 0 <= value < 1:
        return None
    return "is outside [0, 1); a decay or momentum factor must satisfy 0 ≤ β < 1"


def positive(value):
    return None if value > 0 else "must be positive"


def finite(value):
    return None if math.isfinite(value) else "must be a finite number"


# Checks of settings that several optimizers share by name.
_CHECKS = {
    "learning_rate": non_negative,
    "weight_decay": non_negative,
    "eps": non_negative,
    "eps_root": non_negative,
    "b1": decay_factor,
    "b2": decay_factor,
    "b3": decay_factor,
    "momentum": decay_factor,
    "decay": decay_factor,
    "rho": decay_factor,
}
# Settings whose optax default is None but which take a number when given.
_OPTIONAL_NUMBERS = {"momentum", "weight_decay_rate", "optimism", "learning_rate"}
# Optimizers left out: lbfgs and polyak_sgd need the loss value or a line
# search, noisy_sgd a random key per run, sm3 parameters of at least one
# dimension (ours may be scalars), and optimistic_adam is deprecated in favour
# of optimistic_adam_v2.
_UNSUPPORTED = {"lbfgs", "polyak_sgd", "noisy_sgd", "sm3", "optimistic_adam"}


def _spec(make) -> OptimizerSpec:
    hyperparameters = {}
    for name, parameter in inspect.signature(make).parameters.items():
        default = parameter.default
        if name == "learning_rate":
            field = Hyperparameter("learning_rate", required=True, check=non_negative)
        elif isinstance(default, bool):
            field = Hyperparameter("bool", default=default)
        elif isinstance(default, int) and name != "seed":
            field = Hyperparameter("integer", default=default)
        elif isinstance(default, float) or (
            default is None and name in _OPTIONAL_NUMBERS
        ):
            field = Hyperparameter(
                "number", default=default, check=_CHECKS.get(name, finite)
            )
        elif name == "seed":
            field = Hyperparameter("integer", default=default)
        else:
            continue  # dtypes, masks, keys, line searches: not configurable
        hyperparameters[name] = field
    return OptimizerSpec(make=make, hyperparameters=hyperparameters)


def _optax_optimizers():
    found = {}
    for name, make in sorted(vars(optax).items()):
        if (
            inspect.isfunction(make)
            and make.__module__ == "optax._src.alias"
            and name not in _UNSUPPORTED
            and not name.startswith("_")
        ):
            found[name] = _spec(make)
    return found


#: Every optimizer by name, with its hyperparameters.
OPTIMIZERS: dict[str, OptimizerSpec] = _optax_optimizers()


class Schedule(NamedTuple):
    """A learning-rate multiplier s(t), with its settings and their defaults."""

    multiplier: Callable[..., Any]
    settings: dict[str, Hyperparameter]
    summary: str


def _warmup_cosine(t, warmup_steps, decay_steps, init_scale, end_scale):
    warm = init_scale + (1 - init_scale) * t / jnp.maximum(warmup_steps, 1)
    span = jnp.maximum(decay_steps - warmup_steps, 1)
    progress = jnp.clip((t - warmup_steps) / span, 0, 1)
    cosine = end_scale + (1 - end_scale) * 0.5 * (1 + jnp.cos(jnp.pi * progress))
    return jnp.where(t < warmup_steps, warm, cosine)


def _exponential(t, decay_rate, transition_steps, transition_begin):
    elapsed = jnp.maximum(t - transition_begin, 0)
    return decay_rate ** (elapsed / transition_steps)


#: Learning-rate schedules by ``optimizer.schedule.name``.
SCHEDULES: dict[str, Schedule] = {
    "constant": Schedule(lambda t: jnp.ones_like(t), {}, "s(t) = 1"),
    "warmup_cosine": Schedule(
        _warmup_cosine,
        {
            "warmup_steps": Hyperparameter("number", 0.0, check=non_negative),
            "decay_steps": Hyperparameter("number", required=True, check=positive),
            "init_scale": Hyperparameter("number", 0.0, check=non_negative),
            "end_scale": Hyperparameter("number", 0.0, check=non_negative),
        },
        "linear from init_scale to 1 over warmup_steps, then a half cosine to "
        "end_scale at decay_steps (counted from 0, warmup included), then flat",
    ),
    "exponential": Schedule(
        _exponential,
        {
            "decay_rate": Hyperparameter("number", required=True, check=positive),
            "transition_steps": Hyperparameter("number", 1.0, check=positive),
            "transition_begin": Hyperparameter("number", 0.0, check=non_negative),
        },
        "s(t) = decay_rate ** (max(t − transition_begin, 0) / transition_steps)",
    ),
}


def build(spec: Mapping[str, Any], dtype=None) -> optax.GradientTransformation:
    """The optax transformation for a checked ``optimizer`` config section.

    Values may be Python numbers or traced JAX scalars; numbers are cast to
    ``dtype`` so that a float64 run is float64 throughout. A hyperparameter
    left out of the config (None) is left out of the call, so optax's own
    default and structure apply (no momentum buffer without ``momentum``).

    >>> import jax.numpy as jnp
    >>> opt = build({"name": "sgd", "learning_rate": 0.1})
    >>> updates, _ = opt.update(jnp.array(2.0), opt.init(jnp.array(0.0)))
    >>> round(float(updates), 6)
    -0.2
    """
    entry = OPTIMIZERS[spec["name"]]

    def number(value):
        return value if dtype is None else jnp.asarray(value, dtype)

    kwargs = {}
    for key, field in entry.hyperparameters.items():
        value = spec.get(key)
        if key == "learning_rate" or value is None:
            continue
        kwargs[key] = number(value) if field.kind == "number" else value

    schedule = spec.get("schedule")

    def rate(base):
        base = number(base)
        if not schedule or schedule["name"] == "constant":
            return base
        multiplier = SCHEDULES[schedule["name"]].multiplier
        settings = {k: number(v) for k, v in schedule.items() if k != "name"}
        return lambda count: base * multiplier(number(count), **settings)

    rates = spec["learning_rate"]
    if not isinstance(rates, list | tuple):
        return entry.make(learning_rate=rate(rates), **kwargs)
    transforms = {
        str(i): entry.make(learning_rate=rate(r), **kwargs) for i, r in enumerate(rates)
    }
    return optax.multi_transform(transforms, group_labels)


def group_labels(params: Mapping[str, Any]) -> dict:
    """Labels each top-level group of ``params`` by its position: "0", "1", ..."""
    return {key: str(i) for i, key in enumerate(params)}
