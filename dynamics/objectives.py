"""Objectives: what the engine descends, built from the ``objective`` config.

An objective is given one of four ways, each a key of the ``objective`` section:

- ``expr``: a formula in the parameter names that ``start`` lists;
- ``name``: a named function of :data:`FAMILIES` (a test function, a
  quadratic from a spectrum, ...), with its own settings beside the name;
- ``model``: a small network or regression on generated data (:data:`MODELS`);
- ``callable``: ``"package.module:function"``, the user's own JAX function.

Whatever the way, :func:`build` returns a :class:`Problem`: the starting
parameters and the loss. It is called inside the traced simulation, so every
``number`` setting and every start value may be a traced scalar: sweeping one
compiles once. ``integer`` and ``choice`` settings shape the program and are
fixed per config.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dynamics import formula


class Problem(NamedTuple):
    """What the engine runs.

    Attributes:
      params: the starting parameters, a mapping from group name to an array.
      loss: the loss as a function of parameters shaped like ``params``: the
        full objective, which is recorded and classified.
      step_loss: ``step_loss(params, t)``, the loss whose gradient drives step
        ``t`` (a minibatch drawn for that step), or None when it is ``loss``.
    The groups are the keys of ``params`` in order; a per-group learning rate
    list (``optimizer.learning_rate: [a, b]``) gives the i-th to the i-th group.
    """

    params: dict
    loss: Callable[[dict], jax.Array]
    step_loss: Callable[[dict, jax.Array], jax.Array] | None = None

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self.params)

    def gradient(self) -> Callable[[dict, jax.Array], tuple]:
        """``(params, t) -> (loss, gradient)``: the full loss, and the gradient
        that drives step ``t``."""
        if self.step_loss is None:
            value_and_grad = jax.value_and_grad(self.loss)
            return lambda params, t: value_and_grad(params)
        grad = jax.grad(self.step_loss)
        return lambda params, t: (self.loss(params), grad(params, t))


class Setting(NamedTuple):
    """One setting of an objective family, or one of its start values.

    Attributes:
      default: the value when the config leaves it out; None means required.
      kind: ``"number"`` (a float, sweepable), ``"real"`` (a float fixed per
        config: it shapes the program), ``"integer"`` (fixed), ``"choice"``
        (one of ``choices``, fixed) or ``"numbers"`` (a list of floats, fixed).
      check: returns why a value is out of range, or None when it is fine.
      choices: the allowed values of a ``"choice"``.
      help: one line for the README and for error messages.
    """

    default: Any = None
    kind: str = "number"
    check: Callable[[Any], str | None] | None = None
    choices: tuple = ()
    help: str = ""


class Family(NamedTuple):
    """A named objective or model.

    Attributes:
      summary: what it is, with its formula, for the README.
      settings: its settings in the ``objective`` section, by key.
      start: the keys ``start`` may give, with their defaults.
      build: ``build(settings, start, dtype) -> Problem``; ``settings`` and
        ``start`` hold every key of the two tables above, defaults filled in,
        number values possibly traced.
      footprint: for a family whose size is set by its settings,
        ``footprint(settings, itemsize) -> (bytes, words, fix)``: about how
        much memory building it takes (parameters, data, matrices), those
        sizes in words, and which settings to change, so that a config
        asking for more than the machine holds is refused before anything is
        drawn.
    """

    summary: str
    settings: dict[str, Setting]
    start: dict[str, Setting]
    build: Callable[[Mapping, Mapping, np.dtype], Problem]
    footprint: Callable[[Mapping, int], tuple[int, str, str]] | None = None


#: Named functions, by ``objective.name``.
FAMILIES: dict[str, Family] = {}
#: Models on generated data, by ``objective.model``.
MODELS: dict[str, Family] = {}


def build(config: Mapping, dtype) -> Problem:
    """The problem for a checked config (swept values already substituted)."""
    objective, start = config["objective"], config["start"]
    dtype = np.dtype(dtype)
    if objective.get("expr") is not None:
        names = tuple(start)
        loss = formula.parse(objective["expr"], names)
        params = {name: jnp.asarray(start[name], dtype) for name in names}
        return Problem(params=params, loss=loss)
    if objective.get("callable") is not None:
        function = user_function(objective["callable"])
        params = {name: jnp.asarray(value, dtype) for name, value in start.items()}
        return Problem(params=params, loss=lambda p: function(p))
    if objective.get("name") is not None:
        family = FAMILIES[objective["name"]]
    elif objective.get("model") is not None:
        family = MODELS[objective["model"]]
    else:
        raise ValueError("objective has none of expr, name, model, callable")
    settings = {key: objective[key] for key in family.settings}
    return family.build(settings, dict(start), dtype)


def footprint(config: Mapping) -> tuple[int, str, str] | None:
    """About how many bytes building the objective of ``config`` takes, its
    sizes in words and how to make it smaller (:class:`Family`); None for a
    formula, a callable or a family of fixed size."""
    objective = config["objective"]
    if objective.get("name") is not None:
        family = FAMILIES[objective["name"]]
    elif objective.get("model") is not None:
        family = MODELS[objective["model"]]
    else:
        return None
    if family.footprint is None:
        return None
    settings = {key: objective[key] for key in family.settings}
    itemsize = np.dtype(config["dtype"] or "float32").itemsize
    return family.footprint(settings, itemsize)


def scalar_parameter(config: Mapping) -> str | None:
    """The name of the objective's only parameter when it is one scalar, else None.

    Such objectives get the cost-curve figures.
    """
    with jax.enable_x64(config["dtype"] == "float64"):
        shapes = jax.eval_shape(lambda: build(config, config["dtype"]).params)
    if len(shapes) == 1:
        ((name, shape),) = shapes.items()
        if shape.shape == () and name in config["start"]:
            return name
    return None


def describe(objective: Mapping) -> str:
    """A short text naming the objective: its formula, or its name and settings."""
    if objective.get("expr") is not None:
        return f"J = {objective['expr']}"
    if objective.get("callable") is not None:
        return f"J = {objective['callable']}"
    kind = "name" if objective.get("name") is not None else "model"
    settings = ", ".join(
        f"{key}={value}"
        for key, value in objective.items()
        if key != kind and not isinstance(value, list)
    )
    return f"{objective[kind]}({settings})" if settings else str(objective[kind])


def user_function(target: str) -> Callable:
    """Imports ``"package.module:function"`` from the working directory.

    This runs the user's code: a module's top level runs when it is imported.

    Raises:
      ImportError (or whatever the module raises on import), or
      AttributeError when the module has no such function.
    """
    import importlib
    import os
    import sys

    module_name, _, function_name = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    function = getattr(importlib.import_module(module_name), function_name, None)
    if not callable(function):
        raise AttributeError(f"'{module_name}' has no function '{function_name}'")
    return function


def positive(what: str) -> Callable[[float], str | None]:
    """A check that a value is above zero."""

    def check(value):
        return None if value > 0 else f"must be positive ({what})"

    return check


def at_least(minimum: float, what: str) -> Callable[[float], str | None]:
    """A check that a value is at least ``minimum``."""

    def check(value):
        return None if value >= minimum else f"must be at least {minimum:g} ({what})"

    return check


# The families register themselves on import.
from dynamics import functions, models  # noqa: E402, F401
