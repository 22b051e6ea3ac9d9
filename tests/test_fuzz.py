"""The config loader against thousands of broken and generated documents.

Whatever a file holds, :func:`dynamics.config.load_config` must return an
:class:`Experiment` or raise a :class:`ConfigError` whose every problem names
the file, and must not take long doing it. The documents are the repository's
own configs, mutated line by line and character by character, and YAML
structures that Hypothesis builds, alone or spliced into a valid config. A
document that loads must load again, unchanged, from the checked config it
gives (the ``config.yaml`` a run writes).
"""

import glob
import os
import random
import time
import traceback
import warnings

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics.config import Experiment, load_config
from dynamics.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _seed_texts():
    """The repository's configs, less those that build a network or import code
    (a model config draws weights and traces a network on every load)."""
    paths = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
    paths.append(os.path.join(ROOT, "dynamics", "configs", "seed_quadratic.yaml"))
    texts = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if "model:" not in text and "callable:" not in text:
            texts[os.path.relpath(path, ROOT)] = text
    return texts


SEEDS = _seed_texts()
MUTATED = 6000
OVERRIDES = 1500
#: Seconds any one document may take; the slowest is reported either way.
SLOWEST = 5.0

# What a mutation inserts: YAML's syntax, its surprises, and numbers and
# characters that a config should refuse with a message.
TOKENS = [
    "\t", ":", ": ", "-", "- ", "#", "[", "]", "{", "}", ",", "'", '"', "|", ">",
    "?", "&a ", "*a", "&a", "<<: *a", "!!str ", "!!float ", "!!int ", "!!binary ",
    "!!python/object/apply:os.system ", "!!set ", "!!omap ", "!custom ", "%YAML 1.2",
    "---", "...", "yes", "no", "on", "off", "y", "~", "null", "true", "1e999",
    "-1e999", "nan", ".nan", ".inf", "-.inf", "-1", "0", "-0", "1e-320", "0x1F",
    "0o17", "1_000", "12:30:00", "2001-12-14", "99999999999999999999999",
    "9" * 400, "3.5e38", "1e39", "\n", " ", "   ", "\r\n", "\\", "@", "`", "%",
    "é", "名前", "😀", "\u00a0", "\u200b", "\u2028", "\ufeff", "\x00", "\x01",
    "\x1b", "\x7f", "\ufffe",
]  # fmt: skip
VALUES = [
    "[]", "{}", "[1, 2]", "{a: 1}", "''", '""', "text", "~", "yes", "off",
    "1e999", "-1e999", ".nan", ".inf", "-1", "0", "0.0", "1e-320", "1e308",
    "3.5e38", "99999999999999999999999", "9" * 400, "0x1F", "1_000", "2001-12-14",
    "!!binary aGk=", "!!str 5", "!!float 1", "!!int '7'", "!!set {a, b}",
    "!!python/name:os.system", "&a 5", "*a", "[*a]", "|\n  block", "sgd",
    "quadratic", "float64", "w", "loss", "(w - 2)**2", "[1e999]", "[0.1, 0.2]",
    "{linspace: [0, 1], num: 3}", "{logspace: [-3, 0], num: 3}", "{num: -1}",
    "{linspace: [1, 1], num: 2}", "{logspace: [0, -3], num: 4}", "[1, 1.0]",
    "名前", "😀",
]  # fmt: skip


def mutate(text, rng):
    """One to four random edits of ``text``: of lines, of characters, of values."""
    for _ in range(rng.randint(1, 4)):
        lines = text.split("\n")
        edit = rng.randrange(9)
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        if edit == 0:
            del lines[i]
        elif edit == 1:
            lines.insert(i, lines[j])
        elif edit == 2:
            lines[i], lines[j] = lines[j], lines[i]
        elif edit == 3:  # a value of another type
            key, colon, _ = lines[i].partition(":")
            if colon:
                lines[i] = f"{key}: {rng.choice(VALUES)}"
        elif edit == 4:  # a line from another config
            other = rng.choice(list(SEEDS.values())).split("\n")
            lines.insert(i, rng.choice(other))
        elif edit == 5:  # an indentation change
            lines[i] = " " * rng.choice([1, 2, 4]) + lines[i]
        if edit <= 5:
            text = "\n".join(lines)
            continue
        at = rng.randrange(len(text) + 1)
        if edit == 6:
            text = text[:at] + rng.choice(TOKENS) + text[at:]
        elif edit == 7:
            text = text[:at] + text[at + rng.randint(1, 8) :]
        else:
            text = text[:at]  # cut short
    return text


def documents(count, seed=0):
    """``count`` mutated configs, as text or (sometimes) raw bytes."""
    rng = random.Random(seed)
    names = sorted(SEEDS)
    for number in range(count):
        name = rng.choice(names)
        text = mutate(SEEDS[name], rng)
        if number % 400 == 0:  # a value nested deeper than any config needs
            depth = rng.randint(50, 500)
            key, _, _ = rng.choice(text.split("\n")).partition(":")
            yield name, f"{text}\n{key}: {'[' * depth}1{']' * depth}\n"
            continue
        if number % 50 == 1:  # bytes that are not UTF-8
            data = text.encode("utf-8")
            at = rng.randrange(len(data) + 1)
            yield name, data[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80"])
            continue
        yield name, text


def outcome(path, overrides=()):
    """``(result, seconds)``: the Experiment, the ConfigError, or anything else
    the loader raised, with its traceback."""
    start = time.perf_counter()
    try:
        result = load_config(path, overrides)
    except ConfigError as err:
        result = err
    except Exception as err:  # what the test is here to catch
        result = err
        result.where = traceback.format_exc(limit=-3)
    return result, time.perf_counter() - start


def located(err, *where):
    """Why a ConfigError does not name one of ``where`` in every problem, or
    None."""
    if not str(err).strip() or not err.problems:
        return "an empty message"
    for problem in err.problems:
        if not problem.strip() or not any(place in problem for place in where):
            return f"a problem that does not name {where}: {problem!r}"
    return None


def reloads(exp, path):
    """Why the checked config of ``exp`` does not load back the same, or None."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(exp.to_yaml())
    try:
        again = load_config(path)
    except ConfigError as err:
        return f"its checked config is refused: {err}"
    if again.config != exp.config:
        return f"its checked config loads differently: {again.config}"
    for axis, other in zip(exp.sweep, again.sweep, strict=True):
        if axis.key != other.key or not np.array_equal(axis.values, other.values):
            return f"the sweep axis {axis.key} loads differently"
    return None


def test_mutated_configs_load_or_are_refused_with_located_messages(
    tmp_path, record_property
):
    path = tmp_path / "fuzz.yaml"
    failures, kinds, slowest = [], {}, (0.0, None)
    start = time.perf_counter()
    for seed_name, document in documents(MUTATED):
        if isinstance(document, bytes):
            path.write_bytes(document)
        else:
            path.write_text(document, encoding="utf-8", errors="surrogatepass")
        result, seconds = outcome(str(path))
        slowest = max(slowest, (seconds, document), key=lambda pair: pair[0])
        kinds[type(result).__name__] = kinds.get(type(result).__name__, 0) + 1
        if isinstance(result, ConfigError):
            why = located(result, str(path))
        elif isinstance(result, Experiment):
            why = reloads(result, str(tmp_path / "checked.yaml"))
        else:
            why = f"{type(result).__name__}: {result}\n{result.where}"
        if why:
            failures.append((seed_name, document, why))
    elapsed = time.perf_counter() - start
    record_property("documents", MUTATED)
    record_property("seconds", round(elapsed, 2))
    record_property("outcomes", kinds)
    record_property("slowest_seconds", round(slowest[0], 3))
    # Most documents are refused; enough must load that the valid path is fuzzed.
    assert kinds.get("Experiment", 0) > MUTATED // 20, kinds
    assert kinds.get("ConfigError", 0) > MUTATED // 2, kinds
    assert not failures, _summary(failures)
    assert slowest[0] < SLOWEST, f"{slowest[0]:.1f} s for {slowest[1]!r}"


def _summary(failures):
    """The failures grouped by their first line: one example of each."""
    groups = {}
    for seed_name, document, why in failures:
        groups.setdefault(why.split("\n")[0][:120], (seed_name, document, why))
    lines = [f"{len(failures)} documents failed, {len(groups)} kinds:"]
    for head, (seed_name, document, why) in groups.items():
        shown = repr(document)
        shown = shown if len(shown) < 400 else shown[:400] + "..."
        lines.append(f"- {head}\n  from {seed_name}: {shown}\n  {why}")
    return "\n".join(lines)


# Structures that Hypothesis builds, dumped with yaml.safe_dump.

KEYS = [
    "name", "objective", "start", "optimizer", "steps", "sweep", "dtype",
    "chunk_size", "classify", "analysis", "figures", "expr", "w", "x", "y",
    "learning_rate", "momentum", "nesterov", "schedule", "linspace", "logspace",
    "num", "rtol", "window", "orbit", "format", "size", "curvature",
    "optimizer.learning_rate", "start.w", "objective.curvature",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["sgd", "adam", "quadratic", "float64", "w", "loss", "png"]),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(), st.floats())
structures = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=16,
)
STRUCTURED = settings(max_examples=600)  # the rest: tests/conftest.py
BASE = yaml.safe_load(SEEDS[os.path.join("configs", "momentum_quadratic.yaml")])


def spliced(base, where, value):
    """``base`` with the value at the key path ``where`` replaced (or added)."""
    config = yaml.safe_load(yaml.safe_dump(base))
    target = config
    for key in where[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[where[-1]] = value
    return config


# Places in a valid config where a generated structure goes.
PLACES = [
    ("objective",), ("objective", "name"), ("objective", "curvature"),
    ("start",), ("start", "w"), ("optimizer",), ("optimizer", "learning_rate"),
    ("optimizer", "momentum"), ("optimizer", "schedule"), ("steps",),
    ("sweep",), ("sweep", "optimizer.learning_rate"),
    ("sweep", "optimizer.momentum", "num"), ("sweep", "start.w"),
    ("dtype",), ("chunk_size",), ("classify",), ("classify", "window"),
    ("analysis",), ("analysis", "orbit"), ("figures",), ("figures", "size"),
    ("name",), ("extra",),
]  # fmt: skip


@STRUCTURED
@given(
    value=structures,
    place=st.one_of(st.none(), st.sampled_from(PLACES)),
    as_file=st.booleans(),
)
def test_generated_structures_load_or_are_refused_with_located_messages(
    tmp_path_factory, value, place, as_file
):
    document = value if place is None else spliced(BASE, place, value)
    if as_file:
        path = str(tmp_path_factory.getbasetemp() / "structure.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(yaml.safe_dump(document, allow_unicode=True))
        where, config = path, path
    else:
        where, config = "config", document
    start = time.perf_counter()
    try:
        result = load_config(config)
    except ConfigError as err:
        assert located(err, where) is None, located(err, where)
    else:
        assert isinstance(result, Experiment)
    assert time.perf_counter() - start < SLOWEST


def overrides(count, seed=0):
    """``count`` lists of one to three ``key=value`` overrides: keys that
    exist, almost exist or do not, values of every type."""
    rng = random.Random(seed)
    parts = KEYS + ["0", "1", "-1", "x", "", "num", "linspace", "0.0"]
    for _ in range(count):
        items = []
        for _ in range(rng.randint(1, 3)):
            key = ".".join(rng.choice(parts) for _ in range(rng.randint(1, 4)))
            value = rng.choice(VALUES + TOKENS)
            items.append(rng.choice([f"{key}={value}", key, f"={value}"]))
        yield items


def test_overrides_apply_or_are_refused_with_located_messages(tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text(SEEDS[os.path.join("configs", "seed_quadratic.yaml")])
    failures = []
    for items in overrides(OVERRIDES):
        result, seconds = outcome(str(path), items)
        if isinstance(result, ConfigError):
            why = located(result, str(path), "command-line")
        elif isinstance(result, Experiment):
            why = None
        else:
            why = f"{type(result).__name__}: {result}\n{result.where}"
        if seconds > SLOWEST:
            why = f"{seconds:.1f} s"
        if why:
            failures.append(("seed_quadratic.yaml", items, why))
    assert not failures, _summary(failures)


def test_the_seed_configs_load_and_reload(tmp_path):
    for name, text in SEEDS.items():
        path = tmp_path / "seed.yaml"
        path.write_text(text, encoding="utf-8")
        exp = load_config(str(path))
        assert reloads(exp, str(tmp_path / "checked.yaml")) is None, name


# Found by this fuzz test: documents that the loader should refuse with a
# located message, and that escape it as other exceptions instead.

RECIPE = (
    "objective: {expr: '(w - 2)**2 + 1'}\n"
    "start: {w: 0.0}\n"
    "optimizer: {name: sgd, learning_rate: 0.1}\n"
)


def refused(tmp_path, text):
    path = tmp_path / "found.yaml"
    path.write_text(text, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConfigError, match="found.yaml"):
            load_config(str(path))


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1b", "\x7f", "\ufffe"])
def test_a_control_character_is_refused(tmp_path, character):
    refused(tmp_path, RECIPE + f"name: a{character}b\n")


def test_a_control_character_in_an_override_is_refused(tmp_path):
    path = tmp_path / "found.yaml"
    path.write_text(RECIPE, encoding="utf-8")
    with pytest.raises(ConfigError, match="command-line override"):
        load_config(str(path), ["name=a\x01b"])


@pytest.mark.parametrize(
    "line",
    [
        "steps: !!int x",
        "steps: !!int",
        "steps: !!float x",
        "dtype: !!bool x",
        "name: !!timestamp x",
        "!!float a: 1",
    ],
)
def test_a_tag_that_does_not_fit_its_scalar_is_refused(tmp_path, line):
    refused(tmp_path, RECIPE + line + "\n")


def test_an_empty_objective_mapping_is_refused(tmp_path):
    refused(tmp_path, "objective: {}\noptimizer: {name: sgd, learning_rate: 0.1}\n")


def test_a_deeply_nested_value_is_refused(tmp_path):
    refused(tmp_path, RECIPE + "steps: " + "[" * 500 + "]" * 500 + "\n")


@pytest.mark.parametrize("constant", ["1e39", "1e999"])
def test_a_formula_constant_that_does_not_fit_the_dtype_is_refused(tmp_path, constant):
    """1e39 would overflow float32 in the cast, 1e999 is inf: both are refused."""
    refused(tmp_path, RECIPE.replace("+ 1'", f"+ {constant}*w'"))
