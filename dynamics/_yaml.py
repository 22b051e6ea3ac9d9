"""Reading YAML with the line of every key, so that errors can point at it.

PyYAML follows YAML 1.1, which reads ``1e-3`` as a string; a researcher means the
float 0.001, so every number written in exponent form is resolved as a float.
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
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
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
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document({}, {}, {})
        lines, texts = {}, {}
        data = _convert(loader, node, (), lines, texts, filename)
        return Document(data, lines, texts)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        what = err.problem or err.context or "invalid YAML"
        hint = ""
        if "\t" in text and "\\t" in str(what):
            hint = " (YAML indents with spaces, never tabs)"
        raise ConfigError(f"{where}: YAML syntax error: {what}{hint}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{filename}: YAML syntax error: {err}") from None
    finally:
        loader.dispose()


def _convert(loader, node, path, lines, texts, filename):
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = _convert(loader, key_node, path, {}, {}, filename)
            if not isinstance(key, str | int | float):
                line = key_node.start_mark.line + 1
                raise ConfigError(f"{filename}:{line}: a key must be plain text")
            if key in out:
                first = lines.get(path + (key,))
                line = key_node.start_mark.line + 1
                raise ConfigError(
                    f"{filename}:{line}: key '{key}' is given twice "
                    f"(first on line {first}); keep one"
                )
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _convert(
                loader, value_node, path + (key,), lines, texts, filename
            )
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines.setdefault(path + (index,), item.start_mark.line + 1)
            items.append(
                _convert(loader, item, path + (index,), lines, texts, filename)
            )
        return items
    texts[path] = node.value
    return loader.construct_object(node, deep=True)
