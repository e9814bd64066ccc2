"""Issue 19, hostile config: alias bombs, duplicate keys, out-of-range numbers and rules
between keys are each one config error (exit 2, no traceback) before any pipeline starts;
the same YAML loader reads every other YAML file a user hands to mmloom."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotation.annotate_cli import _sizes
from annotation.push import PushError
from annotation.rubric import DEFAULT_RUBRIC, RubricError, load_rubric
from pipelines import config as config_module
from pipelines.cli import main
from pipelines.config import parse_config
from pipelines.publish.inputs import read_targets
from schemas import yamlsafe
from schemas.errors import MmloomError
from sources import config_schema
from tests.conftest import REPO, SAMPLE_CONFIG


def _sample_text(extra: str = "") -> str:
    """configs/sample.yaml with absolute source paths, plus ``extra`` appended."""
    return SAMPLE_CONFIG.read_text().replace("../", str(REPO) + "/") + extra


def _build_fails(tmp_path: Path, capsys, text: str) -> str:
    """Build a config holding ``text``; it must fail with exit 2 and one message."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    argv = ["build", "--config", str(path), "--output", str(tmp_path / "o"), "--no-clip"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
    assert not (tmp_path / "o").exists()
    return err


def _laughs(levels: int, width: int = 10, where: str = "name") -> str:
    """A "billion laughs": ``levels`` lists of ``width`` aliases of the list before, the last
    used as ``where`` (expanded, ``width ** levels`` strings)."""
    lines = ["x0: &x0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * width) + "]")
    return "\n".join(lines) + f"\n{where}: *x{levels - 1}\n"


@pytest.fixture
def no_walk(monkeypatch):
    """Fail the test if the parsed config is ever walked (a bomb must be refused first)."""

    def walked(*args, **kwargs):
        raise AssertionError("the config was walked before the bomb was refused")

    monkeypatch.setattr(config_module, "_non_finite", walked)
    monkeypatch.setattr(config_module, "validate_with", walked)


# --------------------------------------------------------------- aliases


def test_billion_laughs_is_refused_before_it_is_expanded(tmp_path, capsys, no_walk):
    # 10**9 strings once expanded, from 90 aliases in under 700 bytes
    bomb = _laughs(9)
    assert len(bomb) < 700
    err = _build_fails(tmp_path, capsys, "version: 1\n" + bomb)
    assert "is refused" in err and "expands the document by more than" in err
    assert "line " in err


def test_a_bomb_inside_a_valid_config_is_refused(tmp_path, capsys, no_walk):
    text = _sample_text().replace("version: 1\n", "version: 1\n" + _laughs(9, where="x_last"))
    text = text.replace("    split: val\n", "    split: val\n    min_components: *x8\n")
    err = _build_fails(tmp_path, capsys, text)
    assert "expands the document by more than" in err


def test_too_many_aliases_are_refused(tmp_path, capsys, no_walk):
    uses = ", ".join(["*one"] * (yamlsafe.MAX_ALIASES + 1))
    err = _build_fails(tmp_path, capsys, f"version: 1\none: &one 1\nname: [{uses}]\n")
    assert f"more than {yamlsafe.MAX_ALIASES} aliases" in err


def test_a_structure_that_contains_itself_is_refused(tmp_path, capsys, no_walk):
    err = _build_fails(tmp_path, capsys, "version: 1\nname: &me [1, *me]\n")
    assert "inside the node it names" in err


def test_a_few_aliases_and_merge_keys_still_work(tmp_path):
    text = _sample_text(
        "limits: &caps\n  max_file_bytes: 1000000\nimages:\n  exempt_sources: &ex [remi]\n"
        "dedupe:\n  text_categories: [MSR]\n"
    )
    config = parse_config(text, str(tmp_path / "c.yaml"), no_clip=True)
    assert config.limits.max_file_bytes == 1000000
    assert config.images.exempt_sources == ("remi",)
    merged = yamlsafe.load("a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  x: 3\n")
    assert merged["b"] == {"x": 3, "y": 2}  # a merged key may be overridden


# --------------------------------------------------------------- duplicate keys


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("version: 1\nname: one\nname: two\n", "name", "line 2"),
        ("version: 1\nclip:\n  model: a\n  enabled: true\n  model: b\n", "model", "line 3"),
        ("version: 1\nclip:\n  thresholds:\n    SA: 0.1\n    SA: 0.9\n", "SA", "line 4"),
    ],
)
def test_duplicate_keys_are_refused_at_any_depth(tmp_path, capsys, text, key, line):
    err = _build_fails(tmp_path, capsys, text)
    assert f"found duplicate key '{key}' (first at {line})" in err


def test_a_duplicate_source_block_is_refused(tmp_path, capsys):
    text = _sample_text().replace("  coco:\n", "  remi:\n    parquet: x.parquet\n  coco:\n")
    err = _build_fails(tmp_path, capsys, text)
    assert "found duplicate key 'remi'" in err


# --------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    ("extra", "pointer"),
    [
        ("clip:\n  thresholds: {SA: 1.5}\n", "/clip/thresholds/SA"),
        ("clip:\n  thresholds: {MSR: -2}\n", "/clip/thresholds/MSR"),
        ("clip:\n  embedding_duplicate_threshold: -1\n", "/clip/embedding_duplicate_threshold"),
        ("clip:\n  embedding_duplicate_threshold: 0\n", "/clip/embedding_duplicate_threshold"),
        ("clip:\n  embedding_duplicate_threshold: 1.01\n", "/clip/embedding_duplicate_threshold"),
        ("clip:\n  keep_top_fraction: {remi: 1.5}\n", "/clip/keep_top_fraction/remi"),
        ("clip:\n  keep_top_fraction: {remi: 0}\n", "/clip/keep_top_fraction/remi"),
        ("clip:\n  min_batch_size: 0\n", "/clip/min_batch_size"),
        ("clip:\n  max_batch_size: 100000000\n", "/clip/max_batch_size"),
        ("dedupe:\n  text_jaccard: 0\n", "/dedupe/text_jaccard"),
        ("dedupe:\n  text_jaccard: 1.5\n", "/dedupe/text_jaccard"),
        ("dedupe:\n  phash_distance: 65\n", "/dedupe/phash_distance"),
        ("dedupe:\n  phash_distance: -1\n", "/dedupe/phash_distance"),
        ("dedupe:\n  max_image_uses: 0\n", "/dedupe/max_image_uses"),
        ("images:\n  max_aspect: 0.5\n", "/images/max_aspect"),
        ("limits:\n  max_file_bytes: 0\n", "/limits/max_file_bytes"),
    ],
)
def test_numbers_out_of_range_name_their_key(tmp_path, capsys, extra, pointer):
    text = _sample_text()
    if extra.startswith("clip:"):  # replace the sample's clip block
        text = text.split("\nclip:\n")[0] + "\n"
    err = _build_fails(tmp_path, capsys, text + extra)
    assert pointer in err


def test_every_number_in_the_config_schema_is_bounded():
    """Each integer or number key has a lower bound; thresholds and fractions an upper one
    too (``sources.coco.seed`` is any integer: it only seeds a random generator)."""
    schema = config_schema()
    unbounded = []

    def walk(node, where):
        if "$ref" in node:
            node = {**schema["$defs"][node["$ref"].split("/")[-1]], **node}
        types = node.get("type", [])
        types = [types] if isinstance(types, str) else types
        if {"integer", "number"} & set(types) and where != "sources.coco.seed":
            low = "minimum" in node or "exclusiveMinimum" in node
            high = "maximum" in node or "exclusiveMaximum" in node
            if not low or ("number" in types and not high and "aspect" not in where):
                unbounded.append(where)
        for key, child in (node.get("properties") or {}).items():
            walk(child, f"{where}.{key}".lstrip("."))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, f"{where}.*")

    walk(schema, "")
    assert not unbounded, unbounded


# --------------------------------------------------------------- rules between keys


def test_min_batch_size_above_max_batch_size(tmp_path, capsys):
    text = _sample_text("  min_batch_size: 64\n  max_batch_size: 8\n")
    err = _build_fails(tmp_path, capsys, text)
    assert "clip.min_batch_size (64)" in err and "clip.max_batch_size (8)" in err


def test_min_components_above_max_components(tmp_path, capsys):
    text = _sample_text().replace(
        "    split: val\n", "    split: val\n    min_components: 4\n    max_components: 3\n"
    )
    err = _build_fails(tmp_path, capsys, text)
    assert "min_components (4)" in err and "max_components (3)" in err


# --------------------------------------------------------------- other YAML inputs


def test_rubric_with_a_duplicate_key_or_a_bomb_is_refused(tmp_path):
    rubric = tmp_path / "rubric.yaml"
    text = DEFAULT_RUBRIC.read_text(encoding="utf-8")
    top_key = next(line for line in text.splitlines() if line and line[0].isalpha())
    rubric.write_text(f"{text}\n{top_key}\n", encoding="utf-8")
    load_rubric(DEFAULT_RUBRIC)  # the shipped rubric loads
    with pytest.raises(RubricError, match="found duplicate key"):
        load_rubric(rubric)
    rubric.write_text(_laughs(9))
    with pytest.raises(RubricError, match="expands the document"):
        load_rubric(rubric)


def test_sizes_and_targets_files_refuse_duplicate_keys(tmp_path):
    path = tmp_path / "sizes.yaml"
    path.write_text("PBL: {Health: 2}\nPBL: {Health: 3}\n")
    with pytest.raises(PushError, match="found duplicate key 'PBL'"):
        _sizes(path)
    with pytest.raises(MmloomError, match="found duplicate key 'PBL'"):
        read_targets(str(path))
    path.write_text(_laughs(9))
    with pytest.raises(PushError, match="expands the document"):
        _sizes(path)
