"""The schemas are valid JSON Schema, and validation catches what it promises to."""

from __future__ import annotations

import copy

import pytest
from jsonschema import Draft202012Validator

from pipelines.images import load_images
from schemas import load_schema
from schemas.records import make_id
from schemas.taxonomy import taxonomy
from schemas.validation import validate_record, validate_with
from sources import config_schema
from tests.conftest import make_draft


@pytest.mark.parametrize("name", ["record", "config"])
def test_schema_is_valid_2020_12(name):
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")
    assert "version" in schema


def test_taxonomy_has_twelve_fields_and_about_a_hundred_subfields():
    tax = taxonomy()
    assert set(tax) == {
        "Mathematics", "Physics", "Coding", "Statistics", "Literature", "Philosophy",
        "Education", "Finance", "Health", "Sports", "Art", "EECS",
    }  # fmt: skip
    n = sum(len(v) for v in tax.values())
    assert 90 <= n <= 110
    assert all(len(set(v)) == len(v) for v in tax.values())


@pytest.mark.parametrize(
    ("category", "parts", "expected"),
    [
        ("SA", ("vist", "test", "45530"), "SA_vist_test_45530"),
        # parts that sanitising changes get a hash of the raw parts (ids stay injective)
        ("PBL", ("wikihow", "SAFETY_Tips"), "PBL_wikihow_safety_tips--0efdbd9888"),
        ("MSR", ("mathvista", "MSR 1"), "MSR_mathvista_msr-1--99cd8c47c4"),
        ("IF", ("coco", "val", 908400255165), "IF_coco_val_908400255165"),
    ],
)
def test_ids_are_routing_safe(category, parts, expected):
    rid = make_id(category, *parts)
    assert rid == expected
    tokens = [t for t in ("SA", "PBL", "MSR", "IF") if t in rid]
    assert tokens == [category]


def test_valid_record_has_no_issues():
    assert validate_record(load_images(make_draft(n_images=2))) == []


def _issues(record):
    return [str(i) for i in validate_record(record)]


def test_validation_catches_each_rule():
    good = load_images(make_draft())

    bad = copy.deepcopy(good)
    bad["field"] = "Astrology"
    assert any(i.startswith("/field") for i in _issues(bad))

    bad = copy.deepcopy(good)
    bad["subfield"] = "Topology"
    assert any("not in the taxonomy" in i for i in _issues(bad))

    bad = copy.deepcopy(good)
    bad["id"] = "SA_remi_test_7"
    assert any(i.startswith("/id") for i in _issues(bad))

    bad = copy.deepcopy(good)
    bad["id"] = "MSR_remi_SA_7"
    assert any(i.startswith("/id") for i in _issues(bad))

    bad = copy.deepcopy(good)
    bad["question"] = [{"text": "no picture", "image": None}]
    assert any("no image" in i or "never used" in i for i in _issues(bad))

    bad = copy.deepcopy(good)
    del bad["provenance"]["license"]
    assert any(i.startswith("/provenance") for i in _issues(bad))

    bad = copy.deepcopy(good)
    bad["gt_answer"] = [{"text": None, "image": None}]
    assert _issues(bad), "MSR needs a reference text in gt_answer"

    bad = copy.deepcopy(good)
    bad["question_format"] = "multiple_choice"
    bad["options"] = [{"label": "A", "text": "41"}, {"label": "B", "text": "42"}]
    bad["answer_value"] = "C"
    assert any(i.startswith("/answer_value") for i in _issues(bad))


def test_if_weights_must_sum_to_ten():
    rec = load_images(make_draft())
    rec["id"] = "IF_coco_val_1"
    rec["category"] = "IF"
    rec["field"] = "Art"
    rec["subfield"] = "Scene Description"
    comps = [
        {"text": "Describe the scene", "type": "describe", "weight": 6, "facts": {}},
        {"text": "in two sentences", "type": "length_limit", "weight": 3, "facts": {}},
    ]
    rec["instruction"] = {"complexity": "basic", "components": comps}
    assert any("sum to 9" in i for i in _issues(rec))
    comps[1]["weight"] = 4
    assert _issues(rec) == []


def test_sa_and_pbl_keep_mmie_null_gt_answer():
    rec = load_images(make_draft())
    rec.update(id="SA_vist_test_1", category="SA", field="Literature", subfield="Everyday Life")
    rec["answer_value"] = None
    rec["gt_answer"] = [{"text": None, "image": None}]
    assert _issues(rec) == []
    rec["gt_answer"] = [{"text": "x", "image": None}]
    assert _issues(rec)


def test_config_schema_rejects_unknown_keys():
    issues = validate_with(
        config_schema(), {"version": 1, "sources": {"vist": {"sis": "a", "images": "b", "k": 2}}}
    )
    assert issues and "k" in issues[0].message
