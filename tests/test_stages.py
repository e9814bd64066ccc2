"""Every Beam stage that drops input is a RecordStage, and only the base does the bookkeeping.

The base (``schemas/stage.py``) owns counters, the ``DEAD`` output, dead letters and turning
an exception into one; these tests check that no stage does any of it by hand, on the
source text, and that the base keeps its promises.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.deadletter import DEAD, STAGE_SCORE_CLIP
from schemas.errors import EnvironmentFault
from schemas.stage import RecordStage, StageFn
from tools.reason_table import STAGE_MODULES

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "schemas" / "stage.py"

# the stages of issue 21: each must be a RecordStage
EXPECTED = {
    # RestructureRecords: the restructure hook every reader calls (stage ``restructure``)
    "sources.base": ["SourceReader", "RestructureRecords"],
    "pipelines.transforms.images": ["LoadImages"],
    "pipelines.transforms.validate": ["ValidateRecords", "DropDuplicateIds"],
    "pipelines.transforms.io": ["WriteRecords"],
    "pipelines.clip.score": ["ScoreImageText"],
    "pipelines.clip.skip": ["SkipClipScoring"],
    "pipelines.clip.filter": ["FilterByClipScore"],
    "pipelines.dedupe.stages": ["DedupeRecords"],
    "pipelines.audit.blind": ["ScoreBlindAnswerability"],
    "pipelines.audit.blind_flag": ["FlagBlindAnswerable", "SkipBlindScoring"],
    "pipelines.audit.stages": ["AuditAnswerPatterns", "DropFlagged"],
    "pipelines.audit.label_score": ["ScoreLabelAgreement"],
    "pipelines.audit.label_flag": ["FlagLabelSuspect"],
}

# bookkeeping only the base may do
BY_HAND = {
    "a counter": re.compile(r"Metrics\.counter|\bMetrics\b"),
    "a DEAD output built by hand": re.compile(r"TaggedOutput\(\s*DEAD"),
    "a DEAD output wired by hand": re.compile(r"with_outputs\(\s*DEAD"),
    "a dead letter counted by hand": re.compile(r"[\"']dropped_[\"']\s*\+|f[\"']dropped_\{"),
}


def _code_files() -> list[Path]:
    return sorted(
        p
        for package in ("pipelines", "sources")
        for p in (REPO / package).rglob("*.py")
        if p != BASE
    )


@pytest.mark.parametrize(("what", "pattern"), sorted(BY_HAND.items()))
def test_no_stage_does_the_bases_bookkeeping_by_hand(what, pattern):
    found = [
        f"{path.relative_to(REPO)}:{text[: m.start()].count(chr(10)) + 1}"
        for path in _code_files()
        for text in [path.read_text(encoding="utf-8")]
        for m in pattern.finditer(text)
    ]
    assert not found, f"{what} outside schemas/stage.py: {found}"


def _ptransforms(module_name: str) -> list[type]:
    module = importlib.import_module(module_name)
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, beam.PTransform) and cls.__module__ == module_name
    ]


def _stage_modules() -> list[str]:
    """Every module of pipelines/ and sources/ (by name), CLIP's included; not fetch and
    publish, which run no Beam stage (``tests/test_layers.py`` keeps publish off Beam)."""
    names = []
    for path in _code_files():
        if path.parent.name in ("fetch", "publish") or path.name == "cli.py":
            continue
        rel = path.relative_to(REPO).with_suffix("")
        names.append(".".join(p for p in rel.parts if p != "__init__"))
    return sorted(set(names))


@pytest.mark.parametrize("module_name", _stage_modules())
def test_every_transform_that_emits_dead_letters_is_a_record_stage(module_name):
    for cls in _ptransforms(module_name):
        source = inspect.getsource(cls)
        if re.search(r"\bDEAD\b|\breject", source):
            assert issubclass(cls, RecordStage), f"{module_name}.{cls.__name__} emits dead letters"


def test_the_named_stages_are_record_stages_and_listed_for_the_table():
    for module_name, names in EXPECTED.items():
        module = importlib.import_module(module_name)
        for name in names:
            cls = getattr(module, name)
            assert issubclass(cls, RecordStage), name
            assert cls.stage, f"{name} names no dead-letter stage"
            assert cls.namespace == name, "counters are in the class's namespace"
        assert module_name in STAGE_MODULES, f"tools/reason_table.py misses {module_name}"


def test_readers_count_in_their_own_namespace():
    from sources import get_source

    for name in ("vist", "wikihow", "mathvista", "remi", "coco"):
        reader = get_source(name).reader
        assert issubclass(reader, RecordStage)
        assert reader.namespace == reader.__name__


# --- the base's promises, through a small stage ---------------------------------------------


class _Boom(Exception):
    pass


class _HalveFn(StageFn):
    """Yields the record, then fails on ``"raise"``: only the dead letter may come out."""

    def process_element(self, record):
        self.count("in")
        yield {**record, "n": record["n"] // 2}
        if record.get("raise") == "bug":
            raise _Boom("something nobody foresaw")
        if record.get("raise") == "disk":
            raise EnvironmentFault("the disk is full; free space and rerun")


class _Halve(RecordStage):
    stage = STAGE_SCORE_CLIP
    fns = (_HalveFn,)

    def expand_stage(self, records):
        return records | self.par_do(_HalveFn())


def _record(n: int, **extra) -> dict:
    return {"id": f"r{n}", "n": n, "provenance": {"source": "vist", "source_id": str(n)}, **extra}


def test_an_exception_is_one_unexpected_error_and_nothing_else():
    outputs = list(_HalveFn().process(_record(4) | {"raise": "bug"}))
    assert len(outputs) == 1
    (tagged,) = outputs
    assert tagged.tag == DEAD
    letter = tagged.value
    assert letter["reason"] == "unexpected_error" and type(letter["reason"]) is str
    assert (letter["stage"], letter["source"], letter["source_id"]) == ("score_clip", "vist", "4")
    assert letter["detail"].startswith("_Boom: something nobody foresaw")


def test_an_environment_fault_is_not_a_dead_letter():
    with pytest.raises(EnvironmentFault):
        list(_HalveFn().process(_record(4) | {"raise": "disk"}))


def test_a_stage_returns_its_outputs_and_counts_in_its_namespace():
    p = TestPipeline()
    out = p | beam.Create([_record(4), _record(6) | {"raise": "bug"}]) | _Halve()
    assert out.records is out["records"]
    assert_that(out.records | beam.Map(lambda r: r["n"]), equal_to([2]), label="records")
    assert_that(
        out[DEAD] | beam.Map(lambda d: (d["reason"], d["source_id"])),
        equal_to([("unexpected_error", "6")]),
        label="dead",
    )
    result = p.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query()["counters"]
        if c.key.metric.namespace == "_Halve"
    }
    assert counters == {"in": 2, "dropped_unexpected_error": 1}
