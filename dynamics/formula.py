"""Formulas from config files, parsed into JAX functions and never evaluated.

A formula such as ``(w - 2)**2 + 1`` is read with Python's own parser into a
syntax tree, every node of which is checked against a small whitelist: numbers,
the parameter names, ``pi`` and ``e``, arithmetic, powers and the math functions
in :data:`FUNCTIONS`. The tree is then turned into nested closures over
``jax.numpy``, so the result can be differentiated by ``jax.grad``. No string is
ever handed to ``eval``; attribute access, subscripts, lambdas, comprehensions
and calls of anything else are refused before any work starts.

>>> f = parse("(w - 2)**2 + 1", names=("w",))
>>> float(f({"w": 0.0}))
5.0
"""

import ast
import difflib
import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from dynamics.errors import ConfigError

#: Functions a formula may call, by name, with their number of arguments.
FUNCTIONS: dict[str, tuple[Callable, int]] = {
    "sin": (jnp.sin, 1),
    "cos": (jnp.cos, 1),
    "tan": (jnp.tan, 1),
    "arcsin": (jnp.arcsin, 1),
    "arccos": (jnp.arccos, 1),
    "arctan": (jnp.arctan, 1),
    "sinh": (jnp.sinh, 1),
    "cosh": (jnp.cosh, 1),
    "tanh": (jnp.tanh, 1),
    "exp": (jnp.exp, 1),
    "expm1": (jnp.expm1, 1),
    "log": (jnp.log, 1),
    "log1p": (jnp.log1p, 1),
    "log2": (jnp.log2, 1),
    "log10": (jnp.log10, 1),
    "sqrt": (jnp.sqrt, 1),
    "abs": (jnp.abs, 1),
    "sign": (jnp.sign, 1),
    "sigmoid": (jax.nn.sigmoid, 1),
    "softplus": (jax.nn.softplus, 1),
    "relu": (jax.nn.relu, 1),
    "min": (jnp.minimum, 2),
    "max": (jnp.maximum, 2),
    "atan2": (jnp.arctan2, 2),
}

#: Named constants a formula may use.
CONSTANTS = {"pi": math.pi, "e": math.e}

MAX_LENGTH = 2000
MAX_DEPTH = 200

_BINARY = {
    ast.Add: jnp.add,
    ast.Sub: jnp.subtract,
    ast.Mult: jnp.multiply,
    ast.Div: jnp.divide,
    ast.Mod: jnp.mod,
}

Formula = Callable[[Mapping[str, jax.Array]], jax.Array]


def parse(text: str, names: tuple[str, ...], where: str = "formula") -> Formula:
    """Turns ``text`` into a function of a mapping from parameter name to value.

    Args:
      text: the formula, in Python's arithmetic syntax (``**`` for powers).
      names: the parameter names the formula may use.
      where: how to name the formula's location in error messages, such as
        ``"configs/a.yaml:3: objective.expr"``.

    Returns:
      A function ``f(params)`` built from ``jax.numpy`` operations.

    Raises:
      ConfigError: naming the offending part and what is allowed instead.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(
            f"{where}: the formula is empty; write one such as '(w - 2)**2'"
        )
    if len(text) > MAX_LENGTH:
        raise ConfigError(
            f"{where}: the formula has {len(text)} characters, more than the "
            f"{MAX_LENGTH} allowed; use a named objective (objective.name) or "
            "your own function (objective.callable)"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, MemoryError, RecursionError) as err:
        column = f" at column {err.offset}" if getattr(err, "offset", None) else ""
        reason = getattr(err, "msg", "") or type(err).__name__
        if "nested" in reason or not isinstance(err, SyntaxError):
            reason = (
                f"{reason}; a formula may nest at most {MAX_DEPTH} levels, "
                "and Python's parser fewer brackets"
            )
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise ConfigError(
            f"{where}: cannot read the formula {shown!r}{column}: {reason}"
        ) from None
    return _Compiler(text, tuple(names), where).compile(tree.body, depth=0)


class _Compiler:
    def __init__(self, text, names, where):
        self.text, self.names, self.where = text, names, where

    def fail(self, node, message):
        column = getattr(node, "col_offset", None)
        at = f" (column {column + 1})" if column is not None else ""
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        raise ConfigError(f"{self.where}: {message}{at} in {shown!r}")

    def compile(self, node, depth):
        if depth > MAX_DEPTH:
            self.fail(node, f"the formula nests deeper than {MAX_DEPTH} levels")
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            self.fail(
                node,
                f"{_describe(node)} is not allowed in a formula; "
                "use numbers, parameter names, + - * / % ** and "
                "whitelisted functions",
            )
        return method(node, depth + 1)

    def _Constant(self, node, depth):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(node, f"the constant {value!r} is not a number")
        try:
            value = float(value)
        except OverflowError:
            value = math.inf  # an integer too large for a float is infinite
        return lambda params: value

    def _Name(self, node, depth):
        name = node.id
        if name in self.names:
            return lambda params: params[name]
        if name in CONSTANTS:
            value = CONSTANTS[name]
            return lambda params: value
        if name in FUNCTIONS:
            self.fail(node, f"'{name}' is a function; call it as {name}(...)")
        known = list(self.names) + list(CONSTANTS)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        params = ", ".join(self.names) or "none"
        self.fail(
            node,
            f"unknown name '{name}' (parameters: {params}; constants: pi, e){hint}",
        )

    def _UnaryOp(self, node, depth):
        operand = self.compile(node.operand, depth)
        if isinstance(node.op, ast.USub):
            return lambda params: -operand(params)
        if isinstance(node.op, ast.UAdd):
            return operand
        self.fail(node, f"the operator {_describe(node.op)} is not allowed")

    def _BinOp(self, node, depth):
        if isinstance(node.op, ast.BitXor):
            self.fail(node, "'^' is not a power here; write '**' for powers")
        if isinstance(node.op, ast.Pow):
            return self._power(node, depth)
        operation = _BINARY.get(type(node.op))
        if operation is None:
            self.fail(node, f"the operator {_describe(node.op)} is not allowed")
        # A long sum such as a + b + c + ... nests to the left; walk that spine
        # in a loop, so its length does not count as depth.
        chain = [(operation, node.right)]
        left = node.left
        while isinstance(left, ast.BinOp) and type(left.op) in _BINARY:
            chain.append((_BINARY[type(left.op)], left.right))
            left = left.left
        first = self.compile(left, depth)
        rest = [(op, self.compile(term, depth)) for op, term in reversed(chain)]

        def evaluate(params):
            value = first(params)
            for op, term in rest:
                value = op(value, term(params))
            return value

        return evaluate

    def _power(self, node, depth):
        base = self.compile(node.left, depth)
        exponent = _integer_literal(node.right)
        if exponent is not None and abs(exponent) <= 64:
            # An integer power by repeated multiplication: exact, and its
            # gradient stays finite at negative bases.
            return lambda params: jax.lax.integer_pow(
                jnp.asarray(base(params)), exponent
            )
        power = self.compile(node.right, depth)
        return lambda params: jnp.power(base(params), power(params))

    def _Call(self, node, depth):
        if not isinstance(node.func, ast.Name):
            self.fail(node, "only whitelisted functions may be called, by name")
        name = node.func.id
        if name not in FUNCTIONS:
            close = difflib.get_close_matches(name, list(FUNCTIONS), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.fail(
                node,
                f"unknown function '{name}' (allowed: {', '.join(FUNCTIONS)}){hint}",
            )
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            self.fail(node, f"{name}() takes plain positional arguments only")
        function, arity = FUNCTIONS[name]
        if len(node.args) != arity:
            self.fail(
                node,
                f"{name}() takes {arity} argument"
                f"{'s' if arity > 1 else ''}, not {len(node.args)}",
            )
        args = [self.compile(arg, depth) for arg in node.args]
        return lambda params: function(*(arg(params) for arg in args))


def _integer_literal(node):
    """The value of ``3`` or ``-3`` written as an integer literal, else None."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = -1, node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return sign * node.value
    return None


def _describe(node):
    names = {
        "Attribute": "attribute access ('.')",
        "Subscript": "indexing ('[]')",
        "Lambda": "a lambda",
        "ListComp": "a comprehension",
        "GeneratorExp": "a comprehension",
        "SetComp": "a comprehension",
        "DictComp": "a comprehension",
        "NamedExpr": "an assignment (':=')",
        "JoinedStr": "an f-string",
        "FormattedValue": "an f-string",
        "List": "a list",
        "Tuple": "a tuple",
        "Set": "a set",
        "Dict": "a mapping",
        "Starred": "'*' unpacking",
        "Await": "'await'",
        "Yield": "'yield'",
        "YieldFrom": "'yield'",
        "Compare": "a comparison",
        "BoolOp": "'and'/'or'",
        "IfExp": "'if ... else'",
        "Pow": "'**'",
        "BitAnd": "'&'",
        "BitOr": "'|'",
        "FloorDiv": "'//'",
        "MatMult": "'@'",
        "Not": "'not'",
        "Invert": "'~'",
    }
    kind = type(node).__name__
    return names.get(kind, f"'{kind}'")


def constants(text: str) -> list[float]:
    """The numbers written in a (valid) formula, as floats (inf when too large)."""
    found = []
    for node in ast.walk(ast.parse(text.strip(), mode="eval")):
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            try:
                found.append(float(node.value))
            except OverflowError:
                found.append(math.inf)
    return found


def names_used(text: str) -> set[str]:
    """The bare names a (valid) formula refers to, functions excluded."""
    tree = ast.parse(text.strip(), mode="eval")
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    return {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and id(node) not in called
    }
