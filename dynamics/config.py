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
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import yaml

from dynamics import _yaml, schema
from dynamics.errors import ConfigError

DEFAULT_CONFIG = "seed_quadratic.yaml"


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


#: The largest config file read, in bytes.
MAX_BYTES = 2**20


def default_config_path() -> str:
    """The path of the built-in default experiment shipped with the package."""
    return str(resources.files("dynamics") / "configs" / DEFAULT_CONFIG)


def load_config(
    config: Any = None,
    overrides: Sequence[str] = (),
    *,
    named: Mapping[str, str] | None = None,
) -> Experiment:
    """Reads, overrides and checks an experiment config.

    Args:
      config: a path to a YAML file, a mapping, an :class:`Experiment`, or
        ``None`` for the built-in default (``configs/seed_quadratic.yaml``).
      overrides: ``"key=value"`` strings; the key is a dotted path (sweep keys
        keep their own dots, as in ``sweep.start.w.num=64``) and the value is
        read as YAML.
      named: how problems name some overrides, by override: the flag they
        came from (``{"figures.dpi=-3": "--dpi -3"}``) rather than
        ``command-line override 'figures.dpi=-3'``.

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
        if os.path.isdir(path):
            raise ConfigError(f"{path} is a folder; give a config file (YAML)")
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_BYTES + 1)  # never more: /dev/zero is a file
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except OSError as err:
            raise ConfigError(
                f"{path}: cannot read the config: {err.strerror}"
            ) from None
        if len(raw) > MAX_BYTES:
            raise ConfigError(
                f"{path}: more than {MAX_BYTES // 2**20} MiB; a config is a short "
                "YAML file (is this the right file?)"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"{path}: not UTF-8 text (byte {err.start}); save the config as "
                "UTF-8 YAML"
            ) from None
        document = _yaml.load(text, path)
        source = path
        stem = os.path.splitext(os.path.basename(path))[0]
    elif isinstance(config, Mapping):
        document = _yaml.Document(_plain(config), {}, {})
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
    if isinstance(overrides, str):
        overrides = [overrides]
    origins = _Origins(source, document, named or {})
    data = document.data
    for item in overrides:
        _apply_override(data, item, origins)
    config, axes = schema.check(data, origins, stem)
    sweep = tuple(
        Axis(key=key, values=values, scale=scale) for key, values, scale in axes
    )
    return Experiment(config=config, sweep=sweep, source=source)


class _Origins:
    """Where each value came from, to locate problems."""

    def __init__(self, source, document, named):
        self.source = source or "config"
        self.lines = dict(document.lines)
        self.texts = dict(document.texts)
        self.overridden = {}
        self.named = named

    def said(self, item):
        """How a problem names the override ``item``."""
        return self.named.get(item) or f"command-line override '{item}'"

    def where(self, path):
        path = tuple(path)
        dotted = _dotted(path)
        for length in range(len(path), 0, -1):
            item = self.overridden.get(path[:length])
            if item is not None:
                return f"{self.said(item)}: {dotted}"
        for overridden, item in self.overridden.items():
            if overridden[: len(path)] == path:
                return f"{self.said(item)}: {dotted}"
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
    said = origins.said(item)
    given = [before for before in origins.overridden.values()
             if before.partition("=")[0].strip() == key]  # fmt: skip
    if key and given:
        raise ConfigError(
            f"{said}: {key} is given twice on the command "
            f"line (also as '{given[0]}'); keep one"
        )
    if not sep or not key:
        raise ConfigError(
            f"command-line argument '{item}': an override is written key=value, "
            "as in steps=500 or sweep.start.w.num=64"
        )
    if not text.strip():
        raise ConfigError(f"{said}: no value after '='; write {key}=VALUE")
    document = _yaml.load(text, said)
    value = document.data
    path = _override_path(data, key.split("."), said)
    target = data
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(target, dict) else target
        if not isinstance(target, dict | list):
            raise ConfigError(f"{said}: {_dotted(path)} does not lead to a mapping")
    last = path[-1]
    if isinstance(target, list):
        if not isinstance(last, int) or not 0 <= last < len(target):
            raise ConfigError(f"{said}: no item {last} in a list of {len(target)}")
    target[last] = value
    path = tuple(path)
    origins.overridden[path] = item
    # The text as written is the override's now (to explain `on` or `off`).
    for written in [where for where in origins.texts if where[: len(path)] == path]:
        del origins.texts[written]
    for where, written in document.texts.items():
        origins.texts[path + where] = written


def _override_path(data, parts, said):
    """Splits a dotted override key, keeping the dots of sweep keys together."""
    path, node, index = [], data, 0
    while index < len(parts):
        if path == ["sweep"] and (node is None or isinstance(node, dict)):
            # A config without a sweep gets one: its keys keep their dots.
            rest = parts[index:]
            for end in range(len(rest), 0, -1):
                candidate = ".".join(rest[:end])
                if node and candidate in node:
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
                    raise ConfigError(f"{said}: '{part}' must be a list index")
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


def _plain(value):
    """A deep copy of a config mapping with numpy and tuple values made plain."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return copy.deepcopy(value)
