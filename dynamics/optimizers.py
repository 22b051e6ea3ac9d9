"""Optimizers from config, built from optax with traced hyperparameters.

Each entry of :data:`OPTIMIZERS` says which hyperparameters an optimizer takes
and how to check them. :func:`build` is called inside the traced simulation,
so a hyperparameter may be a traced scalar: a whole sweep over it compiles once.

Conventions are optax's. For ``sgd`` with ``momentum`` β (heavy ball)::

    v ← β·v + g,    w ← w − α·v

and with ``nesterov: true``, ``w ← w − α·(β·v + g)`` after the same update of v.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import optax


class Hyperparameter(NamedTuple):
    """One optimizer setting.

    Attributes:
      kind: ``"number"`` (sweepable) or ``"bool"`` (fixed per config).
      default: the value when the config leaves it out (None: not used).
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


def _non_negative(value):
    if value < 0:
        return "is negative; a learning rate is at least 0"
    return None


def _momentum(value):
    if not 0 <= value < 1:
        return "is outside [0, 1); momentum β must satisfy 0 ≤ β < 1"
    return None


def _sgd(learning_rate, momentum=None, nesterov=False):
    return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec(
        make=_sgd,
        hyperparameters={
            "learning_rate": Hyperparameter(
                "number", required=True, check=_non_negative
            ),
            "momentum": Hyperparameter("number", check=_momentum),
            "nesterov": Hyperparameter("bool", default=False),
        },
    ),
}


def build(spec: Mapping[str, Any]) -> optax.GradientTransformation:
    """The optax transformation for a checked ``optimizer`` config section.

    Values may be Python numbers or traced JAX scalars. A hyperparameter left
    out of the config (None) is left out of the call, so optax's own default
    and structure apply (no momentum buffer without ``momentum``).

    >>> import jax.numpy as jnp
    >>> opt = build({"name": "sgd", "learning_rate": 0.1, "momentum": None,
    ...              "nesterov": False})
    >>> updates, _ = opt.update(jnp.array(2.0), opt.init(jnp.array(0.0)))
    >>> round(float(updates), 6)
    -0.2
    """
    entry = OPTIMIZERS[spec["name"]]
    kwargs = {
        key: spec[key] for key in entry.hyperparameters if spec.get(key) is not None
    }
    return entry.make(**kwargs)
