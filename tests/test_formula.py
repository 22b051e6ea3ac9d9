"""Formulas: parsed into JAX, with the values and gradients of the same maths."""

import math

import jax
import numpy as np
import pytest

from dynamics import ConfigError
from dynamics.formula import FUNCTIONS, parse

CASES = [
    ("(w - 2)**2 + 1", lambda w: (w - 2) ** 2 + 1),
    ("-w**2", lambda w: -(w**2)),
    ("w**-2 + w**0.5", lambda w: w**-2 + w**0.5),
    ("3 % 2 + w / 4 - 1e-3", lambda w: 3 % 2 + w / 4 - 1e-3),
    (
        "sin(w) * exp(-w) + log1p(w) + tanh(w) + sqrt(abs(w))",
        lambda w: (
            math.sin(w) * math.exp(-w)
            + math.log1p(w)
            + math.tanh(w)
            + math.sqrt(abs(w))
        ),
    ),
    (
        "max(w, 1) + min(w, 1) + atan2(w, 1) + pi * e",
        lambda w: max(w, 1) + min(w, 1) + math.atan2(w, 1) + math.pi * math.e,
    ),
]


@pytest.mark.parametrize("text, reference", CASES)
def test_values_and_gradients_match_the_maths(text, reference):
    f = parse(text, ("w",))
    with jax.enable_x64(True):
        for w in (0.3, 1.7, 2.5):
            value = float(f({"w": np.float64(w)}))
            assert value == pytest.approx(reference(w), rel=1e-12)
            slope = float(jax.grad(lambda v: f({"w": v}))(np.float64(w)))
            numeric = (reference(w + 1e-6) - reference(w - 1e-6)) / 2e-6
            assert slope == pytest.approx(numeric, rel=1e-6)


def test_integer_powers_are_exact_at_negative_bases():
    f = parse("(w - 2)**2", ("w",))
    assert float(jax.grad(lambda v: f({"w": v}))(-3.0)) == -10.0


def test_several_names_make_a_multidimensional_parameter():
    f = parse("(1 - x)**2 + 100 * (y - x**2)**2", ("x", "y"))
    grad = jax.grad(lambda p: f(p))({"x": 1.0, "y": 1.0})
    assert grad == {"x": 0.0, "y": 0.0}


@pytest.mark.parametrize(
    "text, message",
    [
        ("w.real", "attribute access"),
        ("w[0]", "indexing"),
        ("__import__('os')", "unknown function '__import__'"),
        ("open('x')", "unknown function 'open'"),
        ("(lambda: 1)()", "only whitelisted functions"),
        ("[w for w in (1, 2)]", "comprehension"),
        ("w if w else 1", "'if ... else'"),
        ("w > 1", "comparison"),
        ("'a'", "not a number"),
        ("True", "not a number"),
        ("w ^ 2", "write '**'"),
        ("w // 2", "'//'"),
        ("sin(w, w)", "takes 1 argument"),
        ("sin(x=w)", "positional arguments only"),
        ("sin", "is a function"),
        ("q + 1", "unknown name 'q'"),
        ("", "empty"),
        ("w" + " + w" * 600, "more than the 2000 allowed"),
        ("-" * 1000 + "w", "nests deeper than 200 levels"),
        ("sin(" * 300 + "w" + ")" * 300, "cannot read the formula"),
    ],
)
def test_anything_beyond_the_whitelist_is_refused(text, message):
    with pytest.raises(ConfigError, match="objective.expr") as err:
        parse(text, ("w",), where="objective.expr")
    assert message in str(err.value)


def test_huge_constant_powers_become_infinite_not_slow():
    assert math.isinf(float(parse("9**9**9", ("w",))({"w": 0.0})))


def test_every_whitelisted_function_runs():
    for name, (_, arity) in FUNCTIONS.items():
        f = parse(f"{name}({', '.join(['w'] * arity)})", ("w",))
        assert np.isfinite(float(f({"w": 0.5}))), name


def test_long_sums_are_not_nesting_and_keep_their_order():
    text = " + ".join(f"(w - {i})**2" for i in range(120))
    assert float(parse(text, ("w",))({"w": 1.0})) == sum(
        (1 - i) ** 2 for i in range(120)
    )
    mixed = parse("1 - 2 * 3 / 4 + 5 - w * 2 ** 2 % 3", ("w",))
    assert float(mixed({"w": 1.0})) == 1 - 2 * 3 / 4 + 5 - 1 * 2**2 % 3


def test_an_integer_too_large_for_a_float_is_infinite():
    assert math.isinf(float(parse("w**2 + 1" + "0" * 400, ("w",))({"w": 1.0})))
