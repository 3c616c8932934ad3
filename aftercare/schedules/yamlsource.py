"""YAML loading that remembers where each key stood, so errors can say ``file:line``."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, SequenceNode


class LineDict(dict[str, Any]):
    """A mapping that knows the line of each of its keys (1-based) and its own line.

    A mapping merged from two files (a timeline and its base) also knows which file each key
    came from, so an error in an inherited key names the base file, not the child.
    """

    line: int = 0
    source: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines: dict[str, int] = {}
        self.key_sources: dict[str, str] = {}

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def source_of(self, key: str) -> str:
        return self.key_sources.get(key, self.source)


class LineList(list[Any]):
    """A list that knows the line (and, once merged, the file) of each item."""

    line: int = 0
    source: str = ""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_lines: list[int] = []
        self.item_sources: list[str] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line

    def source_of(self, index: int) -> str:
        return self.item_sources[index] if index < len(self.item_sources) else self.source


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings and lists carry line numbers; duplicate keys are errors."""


def _construct_mapping(loader: _Loader, node: MappingNode) -> LineDict:
    result = LineDict()
    result.line = node.start_mark.line + 1
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise yaml.MarkedYAMLError(
                problem=f"key {key!r} is not text", problem_mark=key_node.start_mark
            )
        if key in result:
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _Loader, node: SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(text: str, source: str = "") -> Any:
    """Parse one YAML document; raises ``yaml.YAMLError`` with a mark on bad syntax.

    Every mapping and list remembers ``source`` (the file name), so merged files still point to
    the file a mistake is in.
    """
    data = yaml.load(text, Loader=_Loader)
    _mark_source(data, source, set())
    return data


def _mark_source(value: Any, source: str, seen: set[int]) -> None:
    # An alias is the same object as its anchor, so a "billion laughs" file (nine lists of nine
    # aliases of the list before, nine deep) is small in memory but has 9**9 paths: each object
    # is visited once, by id, or marking it took minutes.
    if not isinstance(value, LineDict | LineList) or id(value) in seen:
        return
    seen.add(id(value))
    value.source = source
    for child in value.values() if isinstance(value, LineDict) else value:
        _mark_source(child, source, seen)
