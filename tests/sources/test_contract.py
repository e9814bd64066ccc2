"""The source contract, once for every registered source (cf. TFDS's ``DatasetBuilderTestCase``).

For each source in ``sources.names()``: the registry entry, the config check, and the bundled
sample read by the real reader under ``TestPipeline``: its splits, its read dead letters, every
item restructured by the reader's call of the source's hook (restructure dead letters,
category, MMIE-routing-safe ids), and counts that reconcile (items + dead letters = units;
the reader's counters agree). Per-source parsing
tests stay in ``tests/sources/test_<name>.py``; this is the only place that asserts id routing
for the sources.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.deadletter import DEAD, STAGE_READ, STAGE_RESTRUCTURE
from schemas.errors import PipelineConfigError, RecordError
from sources import get_source, names
from sources.base import RESTRUCTURE_NAMESPACE, SourceReader
from tests.sources.reading import read_units

SAMPLE = Path(__file__).resolve().parents[2] / "sample"

# MMIE's scorer routes on substrings of the id: exactly one category token, the rest lower case.
ROUTING_SAFE = re.compile(r"^(SA|PBL|MSR|IF)_[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class Expected:
    """What the bundled sample gives for one source (options as in configs/sample.yaml)."""

    options: dict[str, Any]
    required: str  # an option whose absence check_options reports by name
    category: str
    splits: dict[str, int]  # items per split
    read_dead: dict[str, int] = field(default_factory=dict)  # read dead letters per reason
    restructure_dead: dict[str, int] = field(default_factory=dict)
    files: int = 1


EXPECTED: dict[str, Expected] = {
    "vist": Expected(
        options={
            "sis": str(SAMPLE / "vist" / "sis" / "*.story-in-sequence.json"),
            "images": str(SAMPLE / "vist" / "images"),
            "question_segments": 1,
            "answer_segments": 3,
            "text_field": "text",
        },
        required="sis",
        category="SA",
        splits={"test": 9},
        # story 45530 is the one public raw storylet (1 of 5)
        read_dead={"malformed_story": 1},
    ),
    "wikihow": Expected(
        options={
            "text": str(SAMPLE / "wikihow" / "WikihowText_data.json"),
            "images": str(SAMPLE / "wikihow" / "wiki_images"),
            "max_answer_steps": 3,
        },
        required="text",
        category="PBL",
        splits={"all": 14},
        restructure_dead={"too_few_steps": 1, "unmapped_category": 1},
    ),
    "mathvista": Expected(
        options={"root": str(SAMPLE / "mathvista"), "splits": ["testmini"]},
        required="root",
        category="MSR",
        splits={"testmini": 33},
    ),
    "remi": Expected(
        options={"parquet": str(SAMPLE / "remi" / "*.parquet")},
        required="parquet",
        category="MSR",
        splits={"test": 13, "train": 2},
        files=2,
    ),
    "coco": Expected(
        options={"root": str(SAMPLE / "coco"), "split": "val"},
        required="root",
        category="IF",
        splits={"val": 79},
    ),
}


def test_every_source_has_expectations():
    assert sorted(EXPECTED) == sorted(names())


@pytest.mark.parametrize("name", names())
def test_registry(name: str):
    source = get_source(name)
    assert source.name == name
    assert issubclass(source.reader, SourceReader) and source.reader.source == name
    assert callable(source.restructure) and callable(source.check_options)
    assert source.card.category == EXPECTED[name].category and source.card.title
    assert "@" in source.card.citation
    assert source.config_block["properties"]["enabled"]["default"] is True
    assert source.checksums_file.is_file()
    assert source.fetch is not None and set(source.fetch.default_splits) <= set(source.fetch.splits)


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(KeyError, match="known sources: vist"):
        get_source("nope")


@pytest.mark.parametrize("name", names())
def test_check_options(name: str, tmp_path: Path):
    exp = EXPECTED[name]
    get_source(name).check_options(dict(exp.options))
    missing = {k: v for k, v in exp.options.items() if k != exp.required}
    with pytest.raises(PipelineConfigError, match=rf"sources\.{name}\b.*\b{exp.required}\b"):
        get_source(name).check_options(missing)
    absent = {**exp.options, exp.required: str(tmp_path / "absent")}
    with pytest.raises(PipelineConfigError, match=r"does not exist|no file matches"):
        get_source(name).check_options(absent)


@pytest.mark.parametrize("name", names())
def test_reader_without_input_files_is_a_config_error(name: str, tmp_path: Path):
    exp = EXPECTED[name]
    options = {**exp.options, exp.required: str(tmp_path / "none" / "*.json")}
    with pytest.raises(PipelineConfigError, match=f"sources.{name}"):
        get_source(name).reader(options)


def _check_records(exp: Expected):
    def check(drafts: list[tuple[str, ...]]) -> None:
        assert {d[1] for d in drafts} <= set(exp.splits)
        assert {d[2] for d in drafts} == {exp.category}
        bad_ids = [d[3] for d in drafts if not ROUTING_SAFE.match(d[3])]
        assert bad_ids == []
        assert all(d[3].startswith(exp.category + "_") for d in drafts)
        assert len({d[3] for d in drafts}) == len(drafts)  # ids are unique

    return check


def _counters(result, namespace: str) -> dict[str, int]:
    found = result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]
    return {c.key.metric.name: c.committed for c in found}


@pytest.mark.parametrize("name", names())
def test_sample_read_restructure_and_reconcile(name: str):
    """The reader yields drafts: every item it reads goes through the source's restructure
    hook; read and restructure dead letters come out of its DEAD output."""
    exp = EXPECTED[name]
    reader = get_source(name).reader(exp.options)
    assert len(reader.files) == exp.files
    p = TestPipeline()
    out = p | reader.namespace >> reader
    n_items = sum(exp.splits.values())
    n_drafts = n_items - sum(exp.restructure_dead.values())
    drafts = out.drafts | "Drafts" >> beam.Map(
        lambda d: (d["provenance"]["source"], d["provenance"]["split"], d["category"], d["id"])
    )
    assert_that(drafts, _check_records(exp), label="Records")
    sources = drafts | "Sources" >> beam.Map(lambda d: d[0])
    assert_that(sources, equal_to([name] * n_drafts), label="DraftSources")
    dead = out[DEAD] | "Dead" >> beam.Map(lambda d: (d["stage"], d["source"], d["reason"]))
    expected_dead = [
        *((STAGE_READ, name, r) for r, n in exp.read_dead.items() for _ in range(n)),
        *((STAGE_RESTRUCTURE, name, r) for r, n in exp.restructure_dead.items() for _ in range(n)),
    ]
    assert_that(dead, equal_to(expected_dead), label="Dead")
    result = p.run()
    result.wait_until_finish()

    # every unit is an item or a read dead letter, every item a draft or a restructure dead
    # letter, and the counters say the same
    counters = _counters(result, reader.namespace)
    dropped = {
        k.removeprefix("dropped_"): v for k, v in counters.items() if k.startswith("dropped_")
    }
    assert counters["files"] == exp.files
    assert counters["items"] == n_items
    assert dropped == exp.read_dead
    restructure = _counters(result, RESTRUCTURE_NAMESPACE)
    assert restructure.get("out", 0) == n_drafts
    assert {
        k.removeprefix("dropped_"): v for k, v in restructure.items() if k.startswith("dropped_")
    } == exp.restructure_dead


def test_restructure_alone_gives_the_same_outcomes():
    """``Source.restructure`` is the hook the reader calls: on the items the reader's per-file
    step reads, it gives exactly the drafts and restructure dead letters of the pipeline."""
    exp = EXPECTED["wikihow"]
    reader = get_source("wikihow").reader(exp.options)
    items, _ = read_units(reader)
    outcomes = []
    for item in items:
        try:
            outcomes.append(get_source("wikihow").restructure(item, exp.options)["id"])
        except RecordError as exc:
            outcomes.append(exc.reason)
    assert Counter(o for o in outcomes if not o.startswith("PBL_")) == Counter(exp.restructure_dead)
