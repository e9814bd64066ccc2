"""Generate README.md's config table from the config schema: ``schemas/config.schema.json``
with each registered source's ``sources/<name>/config.schema.json`` (``sources.config_schema``).

    python -m tools.config_table           # print the Markdown table
    python -m tools.config_table --write   # replace the table in README.md (make config-table)

One row per key, in schema order: its dotted name, its default (``required`` for a required key
without one, ``—`` for an optional one) and its ``description``. The schema is the source of
truth: a key without a description is an error, and ``tests/schemas/test_config_table.py``
fails when README.md's table (between the ``config-table`` markers) differs from this output.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sources import config_schema

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- config-table:start -->"
END = "<!-- config-table:end -->"
NOTE = "<!-- generated from schemas/config.schema.json by `make config-table`; do not edit -->"


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``node`` with a ``$ref`` to ``#/$defs/<name>`` replaced by that definition, its own
    keywords (e.g. ``description``) taking precedence."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target = schema["$defs"][ref.removeprefix("#/$defs/")]
    return {**_resolve(target, schema), **{k: v for k, v in node.items() if k != "$ref"}}


def format_default(value: Any) -> str:
    """A default as it would be written in the YAML, in backticks."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list):
        text = "[" + ", ".join(str(v) for v in value) + "]"
    else:
        text = json.dumps(value)
    return f"`{text}`"


# a path with placeholders, e.g. <split>/<photo_flickr_id>.<ext>
PLACEHOLDER_PATH = re.compile(r"[\w./*-]*<[\w:]+>[\w./<>:*-]*")


def _code(match: re.Match) -> str:
    token = match.group(0)
    stripped = token.rstrip(".")
    return f"`{stripped}`{token[len(stripped) :]}"


def format_text(text: str) -> str:
    """A description as one table cell: whitespace collapsed, ``|`` escaped, paths with
    ``<placeholders>`` in code spans (Markdown would take them for HTML), any other ``<``
    escaped."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = PLACEHOLDER_PATH.sub(_code, parts[i])
    parts = "`".join(parts).split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;")
    return "`".join(parts)


def rows(schema: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """``(key, default, meaning)`` for every key of the config, in schema order.

    An object without a default (a block such as ``sources.vist`` or ``images``) gets a row
    of its own and one per property; an object with a default (``clip.thresholds``) is a
    single key.

    Raises:
        ValueError: a key has no ``description``.
    """
    schema = schema or config_schema()
    out: list[tuple[str, str, str]] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        required = set(node.get("required", ()))
        for key, prop in node["properties"].items():
            name = f"{prefix}{key}"
            prop = _resolve(prop, schema)
            if "description" not in prop:
                raise ValueError(f"config.schema.json: {name} has no description")
            if "default" in prop:
                default = format_default(prop["default"])
            else:
                default = "required" if key in required else "—"
            out.append((name, default, format_text(prop["description"])))
            if "properties" in prop and "default" not in prop:
                walk(prop, f"{name}.")

    walk(schema, "")
    return out


def table(schema: dict[str, Any] | None = None) -> str:
    """The Markdown table (ending with a newline)."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{key}` | {default} | {meaning} |" for key, default, meaning in rows(schema)]
    return "\n".join(lines) + "\n"


def block() -> str:
    """What README.md holds between (and including) the markers."""
    return f"{START}\n{NOTE}\n\n{table()}{END}"


def replace_block(readme: str, new_block: str, start: str = START, end: str = END) -> str:
    """``readme`` with the text from ``start`` to ``end`` replaced by ``new_block``.

    Raises:
        ValueError: the markers are missing.
    """
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(readme):
        raise ValueError(f"README.md has no {start} ... {end} markers")
    return pattern.sub(lambda _m: new_block, readme, count=1)


def table_main(
    argv: list[str] | None,
    prog: str,
    doc: str,
    what: str,
    table_fn: Callable[[], str],
    block_fn: Callable[[], str],
    start: str = START,
    end: str = END,
) -> int:
    """The command line of a README table generator: print the table, or ``--write`` it
    between its markers in README.md (this tool and ``tools.reason_table``)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    parser.add_argument(
        "--write", action="store_true", help=f"replace the table in {README.name} in place"
    )
    args = parser.parse_args(argv)
    if not args.write:
        sys.stdout.write(table_fn())
        return 0
    text = README.read_text(encoding="utf-8")
    updated = replace_block(text, block_fn(), start, end)
    if updated != text:
        README.write_text(updated, encoding="utf-8")
        print(f"updated the {what} in {README}", file=sys.stderr)
    else:
        print(f"the {what} in {README} is up to date", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return table_main(argv, "python -m tools.config_table", __doc__, "config table", table, block)


if __name__ == "__main__":
    sys.exit(main())
