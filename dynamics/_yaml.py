"""Reading YAML with the line of every key, so that errors can point at it.

PyYAML follows YAML 1.1, which reads ``1e-3`` as a string; a researcher means the
float 0.001, so every number written in exponent form is resolved as a float, and
so is a signed fraction without a leading digit (``-.5``), which PyYAML also
leaves as text.
Only plain data is read: tags that would construct Python objects are refused.
"""

import re
from typing import Any, NamedTuple

import yaml

from dynamics.errors import ConfigError

Path = tuple  # a location in the document: keys and list indices


class _Loader(yaml.SafeLoader):
    """SafeLoader with exponent-form floats; resolvers copied, not shared."""


_Loader.yaml_implicit_resolvers = {
    first: list(resolvers)
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]\.[0-9][0-9_]*$"), list("-+")
)


class Document(NamedTuple):
    """Parsed YAML and where each of its values came from.

    Attributes:
      data: the plain Python value (dicts, lists, str, int, float, bool, None).
      lines: the 1-based line of each key or list item, by path.
      texts: the text as written of each scalar, by path (to explain ``off``).
    """

    data: Any
    lines: dict
    texts: dict


def load(text: str, filename: str) -> Document:
    """Parses ``text``; any syntax error becomes a ConfigError naming the line."""
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return Document({}, {}, {})
        lines, texts = {}, {}
        data = _Converter(loader, filename, lines, texts).convert(node, ())
        return Document(data, lines, texts)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        what = err.problem or err.context or "invalid YAML"
        hint = ""
        if "\t" in text and "\\t" in str(what):
            hint = " (YAML indents with spaces, never tabs)"
            lines = text.splitlines()
            line = lines[mark.line] if mark and mark.line < len(lines) else ""
            if line[: mark.column if mark else 0].strip():
                hint = " (after a value, YAML here takes spaces, not tabs)"
        if "another document" in str(what):
            hint = (
                " (a config is one YAML document: remove this '---' and what follows)"
            )
        raise ConfigError(f"{where}: YAML syntax error: {what}{hint}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{filename}: YAML syntax error: {err}") from None
    except RecursionError:
        raise ConfigError(
            f"{filename}: the YAML nests too deeply to read; a config needs a few "
            "levels, not hundreds"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


#: Values a document may hold once aliases are expanded: far more than any
#: config needs, far fewer than a "billion laughs" file would make.
MAX_VALUES = 100_000


#: The tags of plain data; any other (``!!python/object``, ``!!set``, ...) is refused.
_PLAIN = {
    f"tag:yaml.org,2002:{name}"
    for name in ("map", "seq", "str", "int", "float", "bool", "null")
}


class _Converter:
    """Turns a composed node graph into plain data, recording lines."""

    def __init__(self, loader, filename, lines, texts):
        self.loader, self.filename = loader, filename
        self.lines, self.texts = lines, texts
        self.count = 0
        self.active = set()

    def fail(self, node, message):
        raise ConfigError(f"{self.filename}:{node.start_mark.line + 1}: {message}")

    def convert(self, node, path):
        self.count += 1
        if self.count > MAX_VALUES:
            self.fail(
                node,
                f"the document holds more than {MAX_VALUES:,} values (with "
                "its aliases expanded); a config needs far fewer: sweep with "
                "linspace or logspace instead of long lists",
            )
        if isinstance(node, yaml.ScalarNode):
            self.texts[path] = node.value
            return self.scalar(node)
        if node.tag not in _PLAIN:
            self.fail(
                node,
                f"the tag '{node.tag.replace('tag:yaml.org,2002:', '!!')}' is not "
                "allowed: a config is plain data (numbers, text, lists, mappings)",
            )
        if id(node) in self.active:
            self.fail(
                node,
                "an alias refers to a value that contains it; "
                "a config cannot be recursive",
            )
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            return [
                self.item(item, path + (index,))
                for index, item in enumerate(node.value)
            ]
        finally:
            self.active.discard(id(node))

    def scalar(self, node):
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:  # `!custom`, a `<<` merge key
            self.fail(
                node,
                f"the tag '{tag}' is not allowed: a config is plain data (numbers, "
                "text, lists, mappings)",
            )
        except yaml.YAMLError:
            raise
        except Exception:  # a tag its text does not fit, such as `!!int x`
            self.fail(node, f"'{node.value}' cannot be read as {tag}")

    def item(self, node, path):
        self.lines.setdefault(path, node.start_mark.line + 1)
        return self.convert(node, path)

    def mapping(self, node, path):
        out = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.fail(key_node, "a key must be plain text")
            key = self.scalar(key_node)
            if isinstance(key, bool):
                self.fail(
                    key_node,
                    f"the key '{key_node.value}' is read by YAML as the boolean "
                    f"{str(key).lower()}; quote it ('{key_node.value}') or rename it",
                )
            if not isinstance(key, str | int | float):
                self.fail(key_node, f"the key {key!r} must be plain text")
            line = key_node.start_mark.line + 1
            if key in out:
                first = self.lines.get(path + (key,))
                self.fail(
                    key_node,
                    f"key '{key}' is given twice (first on line {first}); keep one",
                )
            self.lines[path + (key,)] = line
            out[key] = self.convert(value_node, path + (key,))
        return out
