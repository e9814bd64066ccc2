"""The one YAML loader for files that users hand to mmloom (build configs, rubrics, sizes...).

:func:`load` is ``yaml.safe_load`` with three refusals, all raised while the text is
*composed*, before any value is built or walked (so a hostile file costs no more than its
own size):

* **alias bombs**: more than :data:`MAX_ALIASES` alias uses (``*name``, merge keys
  included), or aliases whose expansion would add more than :data:`MAX_ALIAS_NODES` nodes
  (the "billion laughs": PyYAML shares an aliased node, but every later walk of the data,
  such as JSON Schema validation, visits each use again, so ten levels of ten aliases take
  ten billion steps). The expanded size of each anchored node is counted once and memoised,
  so the check is linear in the file;
* **recursive aliases** (an alias inside the node it names: a structure that contains
  itself, which every walk of the data would follow forever);
* **duplicate keys** in a mapping, at any depth (YAML says keys are unique; PyYAML keeps the
  last one silently). Keys merged in with ``<<`` may be overridden, as YAML intends;
* whatever ``yaml.safe_load`` refuses (tags, syntax).

Each refusal is a ``yaml.YAMLError`` (:class:`YamlRefused` for the first two) whose message
names the problem and its line, so callers that already turn ``yaml.YAMLError`` into a
user-facing error need nothing else.

Bottom layer: imports nothing of the project.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# A build config uses no alias at all; a hand-written rubric might share a few blocks.
MAX_ALIASES = 100
# Nodes that all alias uses together may add to the document when expanded.
MAX_ALIAS_NODES = 10_000

MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlRefused(yaml.MarkedYAMLError):
    """A YAML file that parses but is refused: an alias bomb or a duplicate key."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses alias bombs and duplicate keys while composing."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._alias_uses = 0
        self._alias_nodes = 0
        self._sizes: dict[int, int] = {}
        self._open: set[str] = set()  # anchors of nodes still being composed

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if not self.check_event(yaml.AliasEvent):
            return super().compose_node(parent, index)
        event = self.peek_event()
        self._alias_uses += 1
        if self._alias_uses > MAX_ALIASES:
            raise YamlRefused(
                None,
                None,
                f"more than {MAX_ALIASES} aliases (*{event.anchor}); mmloom refuses YAML "
                "files that use aliases this much (write the values out)",
                event.start_mark,
            )
        if event.anchor in self._open:
            raise YamlRefused(
                None,
                None,
                f"alias *{event.anchor} is inside the node it names (a structure that "
                "contains itself); mmloom refuses it",
                event.start_mark,
            )
        node = super().compose_node(parent, index)  # the anchored node, already complete
        self._alias_nodes += self._expanded_size(node)
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise YamlRefused(
                None,
                None,
                f"alias *{event.anchor} expands the document by more than {MAX_ALIAS_NODES} "
                "nodes (an alias bomb?); mmloom refuses it (write the values out)",
                event.start_mark,
            )
        return node

    def _expanded_size(self, node: Node) -> int:
        """Nodes in ``node`` with every alias inside it expanded (memoised per node: an
        anchored node is complete, and never changes, once an alias can name it)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, SequenceNode):
            size = 1 + sum(self._expanded_size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            size = 1 + sum(self._expanded_size(k) + self._expanded_size(v) for k, v in node.value)
        else:
            size = 1
        self._sizes[id(node)] = size
        return size

    def compose_sequence_node(self, anchor: str | None) -> SequenceNode:
        if anchor is not None:
            self._open.add(anchor)
        try:
            return super().compose_sequence_node(anchor)
        finally:
            self._open.discard(anchor)

    def compose_mapping_node(self, anchor: str | None) -> MappingNode:
        if anchor is not None:
            self._open.add(anchor)
        try:
            node = super().compose_mapping_node(anchor)
        finally:
            self._open.discard(anchor)
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG or not isinstance(key_node, ScalarNode):
                continue  # merged keys may be overridden; complex keys are refused later
            key = self.construct_object(key_node)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # unhashable: SafeConstructor names it
                continue
            if first is not key_node:
                raise YamlRefused(
                    "while reading a mapping",
                    node.start_mark,
                    f"found duplicate key {key_node.value!r} (first at line "
                    f"{first.start_mark.line + 1}); each key may appear once",
                    key_node.start_mark,
                )
        return node


def load(stream: str | bytes | Any) -> Any:
    """Parse one YAML document like ``yaml.safe_load``, refusing alias bombs and duplicate
    keys (see the module docstring).

    Raises:
        yaml.YAMLError: the text is not YAML, or is refused (:class:`YamlRefused`).
    """
    loader = StrictLoader(stream)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
