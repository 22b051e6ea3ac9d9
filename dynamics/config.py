"""Experiment configs: read YAML, apply overrides, check every key, fill defaults.

A config is plain data. :func:`load_config` returns an :class:`Experiment` whose
``config`` holds the checked mapping with every default filled in, and whose
``sweep`` holds one :class:`Axis` per swept key, in the order written. Each
swept key is the dotted path of the config value it replaces. Every problem in
a file is reported at once, each with its file and line.

>>> exp = load_config({"objective": {"expr": "(w - 2)**2 + 1"},
...                    "start": {"w": 0.0},
...                    "optimizer": {"name": "sgd", "learning_rate": 0.1},
...                    "sweep": {"optimizer.learning_rate": [0.1, 0.5]}})
>>> exp.sweep[0].key, exp.sweep[0].values.tolist()
('optimizer.learning_rate', [0.1, 0.5])
"""

import copy
import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import yaml

from dynamics import _yaml, formula
from dynamics.errors import ConfigError
from dynamics.optimizers import OPTIMIZERS

DTYPES = ("float32", "float64")
FIGURE_FORMATS = ("png", "svg", "pdf")
DEFAULT_CONFIG = "seed_quadratic.yaml"

_TOP_KEYS = (
    "name",
    "objective",
    "start",
    "optimizer",
    "steps",
    "sweep",
    "dtype",
    "chunk_size",
    "classify",
    "figures",
)
_UNSWEEPABLE = {
    "steps": "sets the length of the scan",
    "chunk_size": "sets how many runs go through at once",
    "dtype": "sets the precision of the whole program",
}


@dataclass(frozen=True)
class Axis:
    """One swept config value.

    Attributes:
      key: the dotted path of the config value it replaces, as written.
      values: the values, in the order they are run.
      scale: ``"linear"``, ``"log"`` (from logspace) or ``"list"``.
    """

    key: str
    values: np.ndarray
    scale: str


@dataclass(frozen=True)
class Experiment:
    """A checked experiment.

    Attributes:
      config: the whole config as a plain mapping, defaults filled in; the
        values at swept paths are the unswept base values.
      sweep: the swept axes in the order written; the grid is their product.
      source: the file it was read from, or ``None`` for a mapping.
    """

    config: dict
    sweep: tuple[Axis, ...]
    source: str | None = None

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def dtype(self) -> str:
        return self.config["dtype"]

    @property
    def steps(self) -> int:
        return self.config["steps"]

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.config["start"])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(axis.values) for axis in self.sweep)

    @property
    def n_runs(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def to_yaml(self) -> str:
        """The checked config as YAML, readable by :func:`load_config`."""
        return yaml.safe_dump(self.config, sort_keys=False, default_flow_style=None)


def default_config_path() -> str:
    """The path of the built-in default experiment shipped with the package."""
    return str(resources.files("dynamics") / "configs" / DEFAULT_CONFIG)


def load_config(config: Any = None, overrides: Sequence[str] = ()) -> Experiment:
    """Reads, overrides and checks an experiment config.

    Args:
      config: a path to a YAML file, a mapping, an :class:`Experiment`, or
        ``None`` for the built-in default (``configs/seed_quadratic.yaml``).
      overrides: ``"key=value"`` strings; the key is a dotted path (sweep keys
        keep their own dots, as in ``sweep.start.w.num=64``) and the value is
        read as YAML.

    Returns:
      The checked :class:`Experiment`.

    Raises:
      ConfigError: listing every problem, each with its file and line.
    """
    if isinstance(config, Experiment):
        if not overrides:
            return config
        config = config.config
    if config is None:
        config = default_config_path()
    if isinstance(config, str | os.PathLike):
        path = os.fspath(config)
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: cannot read the config: {err}") from None
        document = _yaml.load(text, path)
        source = path
        stem = os.path.splitext(os.path.basename(path))[0]
    elif isinstance(config, Mapping):
        document = _yaml.Document(copy.deepcopy(dict(config)), {}, {})
        source, stem = None, "experiment"
    else:
        raise ConfigError(
            f"a config is a path or a mapping, not {type(config).__name__}"
        )
    if not isinstance(document.data, dict):
        raise ConfigError(
            f"{source or 'config'}: the top level must be a mapping "
            "of keys such as objective, start, optimizer, sweep"
        )
    origins = _Origins(source, document)
    data = document.data
    for item in overrides:
        _apply_override(data, item, origins)
    return _Checker(origins).experiment(data, stem, source)


class _Origins:
    """Where each value came from, to locate problems."""

    def __init__(self, source, document):
        self.source = source or "config"
        self.lines = dict(document.lines)
        self.texts = dict(document.texts)
        self.overridden = {}

    def where(self, path):
        path = tuple(path)
        dotted = _dotted(path)
        for length in range(len(path), 0, -1):
            item = self.overridden.get(path[:length])
            if item is not None:
                return f"command-line override '{item}': {dotted}"
        for length in range(len(path), 0, -1):
            line = self.lines.get(path[:length])
            if line is not None:
                return f"{self.source}:{line}: {dotted}"
        return f"{self.source}: {dotted}" if dotted else self.source


def _dotted(path):
    return ".".join(str(part) for part in path)


def _apply_override(data, item, origins):
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"command-line argument '{item}': an override is written key=value, "
            "as in steps=500 or sweep.start.w.num=64"
        )
    value = _yaml.load(text, f"command-line override '{item}'").data
    if text.strip() == "":
        value = None
    path = _override_path(data, key.split("."), item)
    target = data
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(target, dict) else target
        if not isinstance(target, dict | list):
            raise ConfigError(
                f"command-line override '{item}': {_dotted(path)} "
                "does not lead to a mapping"
            )
    last = path[-1]
    if isinstance(target, list):
        if not isinstance(last, int) or not 0 <= last < len(target):
            raise ConfigError(
                f"command-line override '{item}': no item {last} "
                f"in a list of {len(target)}"
            )
    target[last] = value
    origins.overridden[tuple(path)] = item


def _override_path(data, parts, item):
    """Splits a dotted override key, keeping the dots of sweep keys together."""
    path, node, index = [], data, 0
    while index < len(parts):
        if isinstance(node, dict) and path == ["sweep"]:
            rest = parts[index:]
            for end in range(len(rest), 0, -1):
                candidate = ".".join(rest[:end])
                if candidate in node:
                    path.append(candidate)
                    index += end
                    break
            else:
                path.append(".".join(rest))
                return path
        else:
            part = parts[index]
            if isinstance(node, list):
                if not part.lstrip("-").isdigit():
                    raise ConfigError(
                        f"command-line override '{item}': '{part}' must be a list index"
                    )
                part = int(part)
            path.append(part)
            index += 1
        node = _child(node, path[-1])
    return path


def _child(node, key):
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return None


class _Checker:
    """Checks a config mapping, collecting every problem before raising."""

    def __init__(self, origins):
        self.origins = origins
        self.problems = []

    def problem(self, path, message):
        self.problems.append(f"{self.origins.where(path)}: {message}")

    def done(self):
        if self.problems:
            raise ConfigError(self.problems)

    def experiment(self, data, stem, source):
        self.keys(data, (), _TOP_KEYS)
        config = {
            "name": self.text(data, ("name",), default=stem),
            "objective": self.objective(data),
            "start": self.start(data),
            "optimizer": self.optimizer(data),
            "steps": self.integer(data, ("steps",), default=200, minimum=1),
            "dtype": self.choice(data, ("dtype",), DTYPES, default="float32"),
            "chunk_size": self.integer(data, ("chunk_size",), default=None, minimum=1),
            "classify": self.classify(data),
            "figures": self.figures(data),
        }
        sweep_spec = self.section(data, ("sweep",), required=False)
        config["sweep"] = sweep_spec
        axes = tuple(self.axis(config, key, spec) for key, spec in sweep_spec.items())
        if config["objective"]["expr"] is not None:
            self.formula(config)
        self.done()
        return Experiment(config=config, sweep=axes, source=source)

    # Sections.

    def objective(self, data):
        section = self.section(data, ("objective",), required=True)
        self.keys(section, ("objective",), ("expr",))
        if section and "expr" not in section:
            self.problem(
                ("objective",),
                "missing key 'expr': the cost as a formula "
                "of the parameters, such as '(w - 2)**2 + 1'",
            )
        expr = self.text(section, ("objective", "expr"), default=None)
        return {"expr": expr}

    def start(self, data):
        section = self.section(data, ("start",), required=True)
        start = {}
        for name in section:
            path = ("start", name)
            if (
                not isinstance(name, str)
                or not name.isidentifier()
                or name.startswith("_")
            ):
                self.problem(
                    path,
                    f"'{name}' is not a parameter name; use letters, "
                    "digits and underscores, not starting with a digit or _",
                )
                continue
            start[name] = self.number(section, path, default=None, required=True)
        if data.get("start") is not None and not section:
            self.problem(
                ("start",),
                "name at least one parameter and its starting value, such as 'w: 0.0'",
            )
        return start

    def optimizer(self, data):
        section = self.section(data, ("optimizer",), required=True)
        name = self.choice(
            section, ("optimizer", "name"), tuple(OPTIMIZERS), default="sgd"
        )
        spec = OPTIMIZERS.get(name)
        if spec is None:
            return {"name": name}
        self.keys(section, ("optimizer",), ("name",) + tuple(spec.hyperparameters))
        out = {"name": name}
        for key, field in spec.hyperparameters.items():
            path = ("optimizer", key)
            if field.kind == "bool":
                out[key] = self.boolean(section, path, default=field.default)
            else:
                out[key] = self.number(
                    section,
                    path,
                    default=field.default,
                    required=field.required,
                    check=field.check,
                )
        return out

    def classify(self, data):
        section = self.section(data, ("classify",), required=False)
        self.keys(section, ("classify",), ("rtol", "window"))
        return {
            "rtol": self.number(
                section,
                ("classify", "rtol"),
                default=1e-4,
                check=_open_unit("a relative tolerance"),
            ),
            "window": self.integer(
                section, ("classify", "window"), default=128, minimum=8
            ),
        }

    def figures(self, data):
        section = self.section(data, ("figures",), required=False)
        self.keys(section, ("figures",), ("format", "dpi"))
        return {
            "format": self.choice(
                section, ("figures", "format"), FIGURE_FORMATS, default="png"
            ),
            "dpi": self.integer(section, ("figures", "dpi"), default=150, minimum=10),
        }

    def axis(self, config, key, spec):
        path = ("sweep", key)
        target = self.sweep_target(config, key, path)
        values, scale = self.axis_values(spec, path)
        if target is not None and values is not None:
            for value in values:
                message = target(float(value))
                if message:
                    self.problem(path, f"the value {value:g} {message}")
                    break
        return Axis(key=str(key), values=values, scale=scale)

    def sweep_target(self, config, key, path):
        """The check of the value a sweep key replaces, or None if it has none."""
        if not isinstance(key, str):
            self.problem(path, "a sweep key is the dotted path of a config value")
            return None
        parts = key.split(".")
        if key in _UNSWEEPABLE:
            self.problem(path, f"'{key}' {_UNSWEEPABLE[key]} and cannot be swept")
            return None
        if parts[0] == "start" and len(parts) == 2:
            if parts[1] in config["start"]:
                return lambda value: None
            names = ", ".join(config["start"]) or "none"
            close = difflib.get_close_matches(parts[1], list(config["start"]), n=1)
            if not close and len(config["start"]) == 1:
                close = list(config["start"])
            hint = f"; did you mean 'start.{close[0]}'?" if close else ""
            self.problem(
                path, f"'{parts[1]}' is not a parameter (start has: {names}){hint}"
            )
            return None
        if parts[0] == "optimizer" and len(parts) == 2:
            spec = OPTIMIZERS.get(config["optimizer"]["name"])
            field = spec.hyperparameters.get(parts[1]) if spec else None
            if field is not None and field.kind == "number":
                return field.check or (lambda value: None)
            if field is not None:
                self.problem(path, f"'{key}' is not numeric and cannot be swept")
                return None
        known = _sweepable(config)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        self.problem(
            path,
            f"'{key}' is not a numeric config value that can be "
            f"swept (these can: {', '.join(known)}){hint}",
        )
        return None

    def axis_values(self, spec, path):
        if isinstance(spec, list):
            if not spec:
                self.problem(path, "the list of values is empty")
                return None, "list"
            values = []
            for index, item in enumerate(spec):
                values.append(self.number({index: item}, path + (index,), default=None))
            if any(value is None for value in values):
                return None, "list"
            return np.asarray(values, dtype=np.float64), "list"
        if not isinstance(spec, dict):
            self.problem(
                path,
                "a sweep is a list of values or a mapping such as "
                "{linspace: [0.01, 1.2], num: 240}",
            )
            return None, "list"
        kinds = [kind for kind in ("linspace", "logspace") if kind in spec]
        self.keys(spec, path, ("linspace", "logspace", "num"))
        if len(kinds) != 1:
            self.problem(
                path,
                "give exactly one of linspace: [a, b] or "
                "logspace: [a, b] (base-10 exponents), with num",
            )
            return None, "list"
        kind = kinds[0]
        bounds = spec[kind]
        num = self.integer(
            spec, path + ("num",), default=None, minimum=1, required=True
        )
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or any(_not_number(b) for b in bounds)
        ):
            self.problem(path + (kind,), f"{kind} takes two numbers [a, b]")
            return None, "list"
        if num is None:
            return None, "list"
        low, high = (float(b) for b in bounds)
        if not (np.isfinite(low) and np.isfinite(high)):
            self.problem(path + (kind,), f"{kind} bounds must be finite numbers")
            return None, "list"
        if kind == "linspace":
            return np.linspace(low, high, num), "linear"
        return np.logspace(low, high, num), "log"

    def formula(self, config):
        expr = config["objective"]["expr"]
        names = tuple(config["start"])
        try:
            formula.parse(expr, names, where=self.origins.where(("objective", "expr")))
        except ConfigError as err:
            self.problems.extend(err.problems)
            return
        used = formula.names_used(expr)
        for name in names:
            if name not in used:
                self.problem(
                    ("start", name),
                    f"the parameter '{name}' does not "
                    "appear in objective.expr; remove it or use it",
                )

    # Values.

    def keys(self, mapping, path, allowed):
        if not isinstance(mapping, dict):
            return
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(
                    str(key), [str(a) for a in allowed], n=1
                )
                hint = (
                    f"did you mean '{close[0]}'?"
                    if close
                    else (f"known keys: {', '.join(map(str, allowed))}")
                )
                self.problem(path + (key,), f"unknown key '{key}'; {hint}")

    def section(self, data, path, required):
        value = data.get(path[-1]) if isinstance(data, dict) else None
        if value is None:
            if required and isinstance(data, dict) and path[-1] not in data:
                self.problem(path, f"missing section '{path[-1]}'")
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping of keys, not {_kind(value)}")
            return {}
        return value

    def _present(self, mapping, path, default, required):
        key = path[-1]
        if not isinstance(mapping, dict) or key not in mapping or mapping[key] is None:
            if required:
                self.problem(path, "missing; this value is required")
            return False, default
        return True, mapping[key]

    def number(self, mapping, path, default, required=False, check=None):
        present, value = self._present(mapping, path, default, required)
        if not present:
            return value
        if _not_number(value):
            self.problem(path, f"expected a number, got {self.shown(path, value)}")
            return default
        value = float(value)
        message = check(value) if check else None
        if message:
            self.problem(path, f"the value {value:g} {message}")
        return value

    def integer(self, mapping, path, default, minimum=None, required=False):
        present, value = self._present(mapping, path, default, required)
        if not present:
            return value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(
                path, f"expected a whole number, got {self.shown(path, value)}"
            )
            return default
        if minimum is not None and value < minimum:
            self.problem(path, f"must be at least {minimum}, got {value}")
            return default
        return value

    def boolean(self, mapping, path, default):
        present, value = self._present(mapping, path, default, False)
        if present and not isinstance(value, bool):
            self.problem(path, f"expected true or false, got {self.shown(path, value)}")
            return default
        return value

    def text(self, mapping, path, default):
        present, value = self._present(mapping, path, default, False)
        if present and not isinstance(value, str):
            self.problem(path, f"expected text, got {self.shown(path, value)}")
            return default
        return value

    def choice(self, mapping, path, options, default):
        present, value = self._present(mapping, path, default, False)
        if not present:
            return value
        if value not in options:
            close = difflib.get_close_matches(str(value), list(options), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.problem(path, f"'{value}' is not one of: {', '.join(options)}{hint}")
            return default
        return value

    def shown(self, path, value):
        text = self.origins.texts.get(tuple(path))
        if (
            isinstance(value, bool)
            and text is not None
            and text.lower() not in ("true", "false")
        ):
            return f"'{text}', which YAML reads as the boolean {str(value).lower()}"
        if isinstance(value, str):
            return f"the text '{value}'"
        return f"{_kind(value)} {value!r}"


def _not_number(value):
    return isinstance(value, bool) or not isinstance(value, int | float)


def _kind(value):
    return {
        dict: "a mapping",
        list: "a list",
        str: "text",
        bool: "a boolean",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


def _open_unit(what):
    def check(value):
        if not 0 < value < 1:
            return f"is not a valid {what}; use a number between 0 and 1"
        return None

    return check


def _sweepable(config):
    keys = [f"start.{name}" for name in config["start"]]
    spec = OPTIMIZERS.get(config["optimizer"]["name"])
    if spec:
        keys += [
            f"optimizer.{key}"
            for key, field in spec.hyperparameters.items()
            if field.kind == "number"
        ]
    return keys
