"""README.md's config table is generated from schemas/config.schema.json (tools/config_table.py)."""

from __future__ import annotations

import pytest

from sources import config_schema
from tools import config_table


def test_readme_config_table_matches_the_schema():
    readme = config_table.README.read_text(encoding="utf-8")
    start, end = readme.find(config_table.START), readme.find(config_table.END)
    assert start >= 0 and end > start, "README.md lost its config-table markers"
    current = readme[start : end + len(config_table.END)]
    assert current == config_table.block(), (
        "README.md's config table differs from schemas/config.schema.json; run "
        "`python -m tools.config_table --write` (or `make config-table`) and commit README.md"
    )


def test_every_config_key_is_in_the_table_with_its_default():
    rows = {key: default for key, default, _ in config_table.rows()}
    schema = config_schema()
    for block in ("images", "dedupe", "clip"):
        for key, prop in schema["$defs"][block]["properties"].items():
            assert f"{block}.{key}" in rows
            if "default" in prop:
                assert rows[f"{block}.{key}"] == config_table.format_default(prop["default"])
    assert rows["sources.wikihow.max_answer_steps"] == "`3`"
    assert rows["sources.vist.answer_segments"] == "`3`"
    assert rows["sources.vist.sis"] == "required"


def test_a_key_without_description_is_an_error():
    schema = {"properties": {"x": {"type": "integer"}}, "$defs": {}}
    with pytest.raises(ValueError, match="x has no description"):
        config_table.rows(schema)


def test_replace_block_needs_the_markers():
    with pytest.raises(ValueError, match="markers"):
        config_table.replace_block("no markers here", config_table.block())
    text = f"a\n{config_table.START}\nold\n{config_table.END}\nb\n"
    assert config_table.replace_block(text, "NEW") == "a\nNEW\nb\n"


def test_placeholders_become_code_spans():
    cell = config_table.format_text("Folder of <split>/<id>.jpg. A | B, x <= 1, `<kept>`")
    assert cell == "Folder of `<split>/<id>.jpg`. A \\| B, x &lt;= 1, `<kept>`"
