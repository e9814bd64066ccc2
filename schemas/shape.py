"""The record's column shape, derived from ``record.schema.json`` (the one declaration).

The build's Parquet schema (``schemas.parquet.RECORD_SCHEMA``) and the release's ``datasets``
features (``pipelines.publish.shards.FEATURES``) are both made from :func:`record_shape`; each
states only where it stores a value differently from the JSON Schema's own types.

A shape is a tree of nodes:

* a leaf name: ``"string"``, ``"int32"``, ``"int64"``, ``"float64"``, ``"bool"``, ``"json"``
  (a value kept as JSON text), or ``"image"`` (image bytes and path, the release's
  ``datasets.Image``);
* ``("list", node)``: a list of ``node``;
* a ``dict`` of field name -> node, in column order: a struct (the top level is the row).

How the JSON Schema maps to nodes: an object with ``properties`` is a struct (fields in the
schema's order); an array is a list of its ``items``; ``oneOf`` with a null branch, and a
``type`` list with ``"null"``, are the non-null shape (every column is nullable); strings,
enums and consts of strings are ``string``, numbers ``float64``, booleans ``bool``; integers
are ``int64`` except :data:`INT32` (image sizes and instruction weights, small by the schema's
own bounds). A value with no one type (an object without ``properties``, or several types, like
``answer_value``) is ``json``.

Paths name a node: dotted field names, ``[]`` for a list's items (``images[].width``,
``instruction.components[].facts``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from schemas import load_schema

Node = str | tuple[str, "Node"] | dict[str, "Node"]

# integers stored in 32 bits (the schema bounds them well below 2**31)
INT32 = frozenset({"images[].width", "images[].height", "instruction.components[].weight"})

_SCALARS = {
    "string": pa.string(),
    "json": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}
_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number"}


def record_shape(
    overrides: Mapping[str, Node] | None = None,
    order: Mapping[str, Sequence[str]] | None = None,
    schema: Mapping[str, Any] | None = None,
) -> dict[str, Node]:
    """The shape of a record's row, from ``record.schema.json`` (or ``schema``).

    Args:
        overrides: path -> node stored instead of the derived one (e.g. ``{"scores": "json"}``).
        order: path of a struct -> its field names in the order to store them (every field).
        schema: the JSON Schema to derive from; default ``record.schema.json``.
    """
    schema = load_schema("record") if schema is None else schema
    shape = _node(schema, schema, "", overrides or {}, order or {})
    if not isinstance(shape, dict):
        raise ValueError("the record schema is not an object with properties")
    return shape


def _resolve(root: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref is supported: {ref}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def _types(node: Mapping[str, Any]) -> set[str]:
    """The JSON types a node allows, null left out."""
    if "type" in node:
        declared = node["type"]
        types = {declared} if isinstance(declared, str) else set(declared)
    elif "const" in node:
        types = {_JSON_TYPES.get(type(node["const"]), "mixed")}
    elif "enum" in node:
        types = {_JSON_TYPES.get(type(v), "mixed") for v in node["enum"] if v is not None}
    else:
        types = {"mixed"}
    types.discard("null")
    return types


def _node(
    root: Mapping[str, Any],
    node: Mapping[str, Any],
    path: str,
    overrides: Mapping[str, Node],
    order: Mapping[str, Sequence[str]],
) -> Node:
    if path in overrides:
        return overrides[path]
    node = _resolve(root, node)
    if "oneOf" in node:
        branches = [_resolve(root, b) for b in node["oneOf"]]
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) != 1:
            return "json"
        node = kept[0]
    types = _types(node)
    if types == {"object"} or ("properties" in node and types <= {"object", "mixed"}):
        props = node.get("properties")
        if not props:
            return "json"
        names = list(props)
        if path in order:
            if sorted(order[path]) != sorted(names):
                raise ValueError(f"order for {path!r} must name exactly {names}")
            names = list(order[path])
        return {
            name: _node(root, props[name], f"{path}.{name}" if path else name, overrides, order)
            for name in names
        }
    if types == {"array"} and "items" in node and isinstance(node["items"], Mapping):
        return ("list", _node(root, node["items"], f"{path}[]", overrides, order))
    if types == {"string"}:
        return "string"
    if types == {"integer"}:
        return "int32" if path in INT32 else "int64"
    if types == {"number"}:
        return "float64"
    if types == {"boolean"}:
        return "bool"
    return "json"


def arrow_type(node: Node) -> pa.DataType:
    """The pyarrow type of a shape node (``json`` is a string; ``image`` the
    ``{bytes, path}`` struct ``datasets.Image`` stores)."""
    if isinstance(node, dict):
        return pa.struct([(name, arrow_type(child)) for name, child in node.items()])
    if isinstance(node, tuple):
        return pa.list_(arrow_type(node[1]))
    if node == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    return _SCALARS[node]


def arrow_schema(shape: Mapping[str, Node]) -> pa.Schema:
    """A row shape as a pyarrow schema (every field nullable, no metadata)."""
    return pa.schema([(name, arrow_type(node)) for name, node in shape.items()])


def json_columns(shape: Mapping[str, Node]) -> tuple[str, ...]:
    """The top-level columns stored as JSON text, in column order."""
    return tuple(name for name, node in shape.items() if node == "json")
