"""Strict readers of the YAML and JSON files the workflow and the commands read.

A key given twice in one mapping is refused, naming the file, the key and both lines:
YAML and JSON loaders keep the last value silently, and a reproducible run must not
depend on which of two values a reader keeps. YAML aliases (``*name``) are refused in
configuration files: nine nested aliases expand to a billion values ("billion laughs"),
and a message formatted from the expanded document never ends. PyYAML's SafeLoader and
the standard ``json`` module lack both checks; they are added here, on their hooks (a
mapping constructor and ``object_pairs_hook``).

Pure standard library plus PyYAML (imported when a YAML file is read), so the workflow can
use it from this repository's ``src/`` in any Snakemake installation.
"""

import json
import re
from pathlib import Path

from coronalign.errors import InputFileError

__all__ = ["DuplicateKeyError", "load_json", "load_yaml", "read_json", "read_yaml"]


class DuplicateKeyError(ValueError):
    """A mapping gives one key twice (``key``, and the 1-based ``lines`` where known)."""

    def __init__(self, key, lines=()):
        self.key = key
        self.lines = tuple(lines)
        where = f" (lines {' and '.join(map(str, self.lines))})" if self.lines else ""
        super().__init__(f"the key {key!r} is given twice{where}; keep one")


def _json_key_lines(text, key):
    """The 1-based lines where ``"key":`` appears in a JSON text (the first two)."""
    pattern = re.compile(re.escape(json.dumps(key)) + r"\s*:")
    return [text.count("\n", 0, match.start()) + 1 for match in pattern.finditer(text)][:2]


def load_json(text):
    """Parse JSON text, refusing a key given twice in one object.

    Parameters
    ----------
    text : str
        The JSON text.

    Returns
    -------
    object
        The parsed document.

    Raises
    ------
    DuplicateKeyError
        An object gives one key twice (with the lines of both).
    json.JSONDecodeError
        The text is not JSON.
    """

    def unique(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise DuplicateKeyError(key, _json_key_lines(text, key))
            seen[key] = value
        return seen

    return json.loads(text, object_pairs_hook=unique)


def _strict_loader():
    import yaml

    class StrictSafeLoader(yaml.SafeLoader):
        """SafeLoader refusing aliases and a key given twice in one mapping."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                event = self.peek_event()
                raise yaml.MarkedYAMLError(
                    problem=f"YAML aliases (*{event.anchor}) are not accepted in this file; "
                    "write the values out",
                    problem_mark=event.start_mark,
                )
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                self.flatten_mapping(node)
                seen = {}
                for key_node, _ in node.value:
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key: SafeLoader's own error follows
                        continue
                    line = key_node.start_mark.line + 1
                    if first is not None:
                        raise DuplicateKeyError(key, (first, line))
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    StrictSafeLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, StrictSafeLoader.construct_yaml_map
    )
    return StrictSafeLoader


def load_yaml(text):
    """Parse YAML text safely, refusing aliases and a key given twice in one mapping.

    Parameters
    ----------
    text : str
        The YAML text.

    Returns
    -------
    object
        The parsed document.

    Raises
    ------
    DuplicateKeyError
        A mapping gives one key twice (with the lines of both).
    yaml.YAMLError
        The text is not YAML, or uses an alias.
    """
    import yaml

    return yaml.load(text, Loader=_strict_loader())


def _one_line(error):
    return " ".join(str(error).split())


def read_json(path, what):
    """Read a JSON file strictly; every failure is an InputFileError naming the file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str
        What the file is, for the message (e.g. ``"association"``).

    Returns
    -------
    object
        The parsed document.

    Raises
    ------
    InputFileError
        The file is unreadable, not JSON, or gives a key twice.
    """
    path = Path(path)
    try:
        return load_json(path.read_text())
    except DuplicateKeyError as error:
        raise InputFileError(path, f"{what}: {error}") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputFileError(path, f"the {what} is not a readable JSON file ({error})") from None


def read_yaml(path, what):
    """Read a YAML file strictly; every failure is an InputFileError naming the file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str
        What the file is, for the message (e.g. ``"configuration"``).

    Returns
    -------
    object
        The parsed document.

    Raises
    ------
    InputFileError
        The file is unreadable, not YAML, uses an alias or gives a key twice.
    """
    import yaml

    path = Path(path)
    try:
        return load_yaml(path.read_text())
    except DuplicateKeyError as error:
        raise InputFileError(path, f"{what}: {error}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InputFileError(path, f"is not a readable YAML {what}: {_one_line(error)}") from None
