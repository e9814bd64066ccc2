"""Tests for the VIST reader: pure parsing on the real raw SIS record, story checks, image
resolution, restructuring, ``ReadVIST`` under ``TestPipeline``, and every sample story end to
end (restructure -> load_images -> validate_record)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.images import load_images
from schemas.deadletter import DEAD
from schemas.errors import PipelineConfigError, RecordError
from schemas.fs import list_dir_stems, read_bytes
from schemas.records import NULL_GT_ANSWER
from schemas.taxonomy import source_table, taxonomy
from schemas.validation import validate_record
from sources.vist import ReadVIST, parse
from tests.sources.reading import read_units
from tools.sample_images import make_image

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample" / "vist"
SAMPLE_SIS = SAMPLE / "sis" / "test.story-in-sequence.json"
RAW_RECORD = SAMPLE / "upstream" / "sis_raw_record_example.json"
SAMPLE_OPTIONS = {
    "sis": str(SAMPLE / "sis" / "*.story-in-sequence.json"),
    "images": str(SAMPLE / "images"),
    "text_field": "text",
}
# The sample: 10 stories read; story 45530 is the one public raw storylet (1 of 5) -> read dead
# letter; story 990008 lacks photo 13650765 (deleted from Flickr) -> image_missing.
EXPECTED_SPLITS = {"test": 9}
EXPECTED_READ_DEAD = [("malformed_story", "45530")]
MISSING_PHOTO_STORY = "990008"


# ---------------------------------------------------------------------------------------------
# Factories
# ---------------------------------------------------------------------------------------------


def storylet(story="1", order=0, photo=None, album="100", **extra) -> dict:
    """One SIS storylet in the published shape (all ids strings, order an int)."""
    photo = photo if photo is not None else f"{story}{order}"
    ann = {
        "story_id": story,
        "storylet_id": f"{story}{order}",
        "album_id": album,
        "photo_flickr_id": photo,
        "worker_arranged_photo_order": order,
        "tier": "story-in-sequence",
        "setting": "first-2-pick-and-tell",
        "worker_id": "W1",
        "original_text": f"Sentence {order} of story {story}.",
        "text": f"sentence {order} of story {story} .",
    }
    ann.update(extra)
    return ann


def story(story_id="1", album="100") -> list[dict]:
    return [storylet(story_id, o, album=album) for o in range(5)]


def container(anns: list, albums=None, images=None, wrap=True) -> dict:
    return {
        "albums": albums if albums is not None else [{"id": "100", "vist_label": "wedding"}],
        "images": images or [],
        "annotations": [[a] if wrap else a for a in anns],
    }


def by_unit(units) -> dict:
    """Unit id -> item or RecordError (``iter_sis_units`` names each unit in ``source_id``)."""
    return {u.source_id if isinstance(u, RecordError) else u["source_id"]: u for u in units}


def units_of(doc: dict, stems=None, text_field="original_text", dii=None) -> dict:
    return by_unit(
        parse.iter_sis_units(
            doc,
            split="train",
            source_file="/data/train.story-in-sequence.json",
            images_root="/data/images",
            image_stems=stems or {},
            text_field=text_field,
            dii=dii,
        )
    )


def one_error(doc: dict, **kw) -> RecordError:
    results = list(units_of(doc, **kw).values())
    assert len(results) == 1
    assert isinstance(results[0], RecordError), results[0]
    return results[0]


# ---------------------------------------------------------------------------------------------
# The real raw record
# ---------------------------------------------------------------------------------------------


def test_raw_record_fields():
    doc = parse.load_container(RAW_RECORD.read_bytes(), str(RAW_RECORD))
    albums, images = parse.index_by_id(doc["albums"]), parse.index_by_id(doc["images"])
    assert list(albums) == ["44277"] and list(images) == ["1741642"]
    assert albums["44277"]["title"] == "A trip to Stevenage"
    assert albums["44277"]["vist_label"] == "fair"
    assert albums["44277"]["photos"] == "23"  # a count, as a string
    assert images["1741642"]["license"] == "1"
    ann = parse.unwrap_annotation(doc["annotations"][0], 0, str(RAW_RECORD))
    assert ann["photo_flickr_id"] == "1741642"
    assert ann["worker_arranged_photo_order"] == 0
    assert ann["original_text"] == "The local parish holds a craft show each year."
    assert ann["text"] == "the local parish holds a craft show each year ."
    # Only the first storylet of story 45530 is public: a 1-storylet story is reported.
    units = parse.group_annotations(doc["annotations"], str(RAW_RECORD))
    assert [(u, len(e)) for u, e in units] == [("45530", 1)]
    err = one_error(doc)
    assert err.reason == "malformed_story"
    assert "story 45530" in err.detail and "1 storylets" in err.detail


def test_raw_record_completed_story_keeps_real_values():
    """The raw storylet plus 4 made-up ones: the real values come through unchanged."""
    doc = json.loads(RAW_RECORD.read_text("utf-8"))
    raw = doc["annotations"][0][0]
    others = [storylet("45530", o, album="44277", photo=f"99{o}") for o in range(1, 5)]
    doc["annotations"] = [[raw]] + [[a] for a in reversed(others)]
    item = units_of(doc, stems={"1741642": "/data/images/train/1741642.jpg"})["45530"]
    first = item["storylets"][0]
    assert [s["order"] for s in item["storylets"]] == [0, 1, 2, 3, 4]
    assert first["photo_id"] == "1741642" and first["storylet_id"] == "227650"
    assert first["worker_id"] == "FJROI8NWDRIPAM1"
    assert first["image"]["license"] == "1" and first["image_found"] is True
    assert item["album"]["title"] == "A trip to Stevenage"

    record = parse.restructure(item, {})
    assert record["id"] == "SA_vist_train_45530"
    assert record["subfield"] == "Public Events and Festivals"  # "fair"
    assert record["question"][0] == {"text": parse.DEFAULT_PROMPT, "image": None}
    assert record["question"][1] == {
        "text": "The local parish holds a craft show each year.",
        "image": "@0",
    }
    assert record["images"][0]["license"] == "flickr:1 CC BY-NC-SA 2.0"
    meta = record["source_metadata"]
    assert meta["album_title"] == "A trip to Stevenage" and meta["vist_label"] == "fair"
    assert meta["storylets"][0]["text"] == "the local parish holds a craft show each year ."
    assert meta["storylets"][0]["image_license_code"] == "1"
    assert meta["photo_ids"][0] == "1741642"
    assert "no explicit licence" in record["provenance"]["license"]


# ---------------------------------------------------------------------------------------------
# Containers, grouping and story checks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"{not json", "not valid SIS JSON"),
        (b"[]", "top level is list"),
        (b'{"albums": [], "images": []}', "missing top-level key 'annotations'"),
        (b'{"albums": [], "images": [], "annotations": {}}', "'annotations' is dict"),
        (b"\xff\xfe", "not valid SIS JSON"),
    ],
)
def test_malformed_file(data, needle):
    with pytest.raises(RecordError) as exc:
        parse.load_container(data, "/x/test.story-in-sequence.json")
    assert exc.value.reason == "malformed_file"
    assert needle in exc.value.detail and "/x/test.story-in-sequence.json" in exc.value.detail


def test_extra_top_level_keys_are_tolerated():
    doc = container(story("1"))
    doc["type"] = "story-in-sequence"
    doc["info"] = {"version": 1}
    doc = parse.load_container(json.dumps(doc).encode(), "f")
    assert not isinstance(units_of(doc)["1"], RecordError)


def test_split_of():
    assert parse.split_of("gs://b/vist/sis/train.story-in-sequence.json") == "train"
    assert parse.split_of("/d/val.description-in-isolation.json") == "val"
    with pytest.raises(RecordError):
        parse.split_of("/d/.story-in-sequence.json")


def test_grouping_sorting_and_unwrapping():
    a, b = story("7"), story("8", album="200")
    # Interleaved, shuffled orders; some wrapped in 1-element lists, some bare dicts.
    anns = [[a[3]], b[4], [a[0]], [b[0]], a[4], [b[2]], [a[1]], [b[1]], [a[2]], [b[3]]]
    doc = {"albums": [{"id": "100"}], "images": [], "annotations": anns}
    units = units_of(doc)
    assert list(units) == ["7", "8"]  # first appearance, not by album
    for sid in ("7", "8"):
        item = units[sid]
        assert [s["order"] for s in item["storylets"]] == [0, 1, 2, 3, 4]
        assert [s["photo_id"] for s in item["storylets"]] == [f"{sid}{o}" for o in range(5)]
        assert item["split"] == "train" and item["source_id"] == sid
    assert units["8"]["album"] is None  # album 200 not listed: kept, label unknown


def test_numeric_ids_become_strings():
    anns = [
        storylet("5", o, photo=str(10**12 + o), story_id=5, photo_flickr_id=10**12 + o)
        for o in range(5)
    ]
    anns[2]["worker_arranged_photo_order"] = "2"  # digit string accepted
    item = units_of(container(anns))["5"]
    assert item["source_id"] == "5"
    assert item["storylets"][0]["photo_id"] == "1000000000000"
    assert [s["order"] for s in item["storylets"]] == [0, 1, 2, 3, 4]


def _mutate(fn):
    anns = story("1")
    fn(anns)
    return anns


@pytest.mark.parametrize(
    ("anns", "needle"),
    [
        (story("1")[:4], "4 storylets, expected 5"),
        ([*story("1"), storylet("1", 4, photo="extra")], "6 storylets"),
        (_mutate(lambda a: a[4].update(worker_arranged_photo_order=3)), "orders [0, 1, 2, 3, 3]"),
        (_mutate(lambda a: a[0].update(worker_arranged_photo_order=5)), "orders [1, 2, 3, 4, 5]"),
        (_mutate(lambda a: a[1].update(photo_flickr_id="10")), "repeated photos"),
        (_mutate(lambda a: a[3].update(album_id="999")), "albums ['100', '999']"),
        (_mutate(lambda a: a[2].update(worker_arranged_photo_order="two")), "expected an integer"),
        (_mutate(lambda a: a[2].update(worker_arranged_photo_order=True)), "expected an integer"),
        (_mutate(lambda a: a[2].update(original_text=None)), "expected a string"),
        (_mutate(lambda a: a[2].update(photo_flickr_id="")), "empty or non-string"),
    ],
)
def test_malformed_story(anns, needle):
    err = one_error(container(anns))
    assert err.reason == "malformed_story"
    assert needle in err.detail and "story 1" in err.detail


@pytest.mark.parametrize(
    "key", ["album_id", "photo_flickr_id", "worker_arranged_photo_order", "original_text"]
)
def test_missing_key(key):
    anns = story("1")
    del anns[3][key]
    err = one_error(container(anns))
    assert err.reason == "missing_key"
    assert f"annotations[3] has no {key!r}" in err.detail
    assert "train.story-in-sequence.json" in err.detail


def test_text_field_decides_which_key_is_required():
    anns = story("1")
    for a in anns:
        del a["original_text"]
    assert one_error(container(anns)).reason == "missing_key"
    assert not isinstance(units_of(container(anns), text_field="text")["1"], RecordError)


def test_unassignable_annotations_are_their_own_units():
    no_story = storylet("9", 0)
    del no_story["story_id"]
    doc = container([*story("1"), no_story], wrap=True)
    doc["annotations"] += [[], [storylet("2", 0), storylet("2", 1)], "text", [{"story_id": None}]]
    units = units_of(doc)
    reasons = {uid: r.reason for uid, r in units.items() if isinstance(r, RecordError)}
    assert reasons == {
        "train.story-in-sequence.json#annotations[5]": "missing_key",
        "train.story-in-sequence.json#annotations[6]": "malformed_annotation",
        "train.story-in-sequence.json#annotations[7]": "malformed_annotation",
        "train.story-in-sequence.json#annotations[8]": "malformed_annotation",
        "train.story-in-sequence.json#annotations[9]": "malformed_annotation",
    }
    assert not isinstance(units["1"], RecordError)
    assert len(units) == 1 + 5  # every element is accounted for once


@pytest.mark.parametrize("photo", ["../../etc/passwd", "..", "a/b", "a\\b"])
def test_photo_id_cannot_leave_the_images_folder(photo):
    anns = story("1")
    anns[2]["photo_flickr_id"] = photo
    err = one_error(container(anns))
    assert err.reason == "path_escapes_root"
    assert "photo_flickr_id" in err.detail


def _train_story(tmp_path, stems: dict[str, str]) -> dict:
    """Story 1 of the train split, photos resolved under ``tmp_path/images`` by stem."""
    return parse.build_story(
        "1",
        list(enumerate(story("1"))),
        split="train",
        source_file="f",
        albums={},
        images={},
        images_root=str(tmp_path / "images"),
        image_stems=stems,
    )


def test_images_resolved_by_stem(tmp_path):
    folder = tmp_path / "images" / "train"
    folder.mkdir(parents=True)
    (folder / "10.png").write_bytes(make_image("10", fmt="PNG"))
    for name in ("11", "12", "13"):
        (folder / f"{name}.jpg").write_bytes(make_image(name))
    stems = list_dir_stems(str(folder))
    item = _train_story(tmp_path, stems)
    found = {s["photo_id"]: (s["image_uri"], s["image_found"]) for s in item["storylets"]}
    assert found["10"] == (str(folder / "10.png"), True)
    assert found["12"] == (str(folder / "12.jpg"), True)
    # Not on disk (deleted from Flickr): still emitted, with the expected .jpg path.
    assert found["14"] == (str(folder / "14.jpg"), False)
    draft = parse.restructure(item, {"answer_segments": None})  # the whole story, photo 14 too
    with pytest.raises(RecordError) as exc:
        load_images(draft)
    assert exc.value.reason == "image_missing" and "14.jpg" in exc.value.detail
    (folder / "14.jpg").write_bytes(make_image("14"))
    record = load_images(draft)
    assert record["images"][0]["format"] == "png"
    assert validate_record(record) == []


# ---------------------------------------------------------------------------------------------
# Restructuring and mapping tables
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "cap", "n_answer"), [(1, 3, 3), (1, None, 4), (2, 3, 3), (2, 1, 1)])
def test_answer_is_capped_for_mmie_scorer(tmp_path, k, cap, n_answer):
    folder = tmp_path / "images" / "train"
    folder.mkdir(parents=True)
    for name in ("10", "11", "12", "13", "14"):
        (folder / f"{name}.jpg").write_bytes(make_image(name))
    item = _train_story(tmp_path, list_dir_stems(str(folder)))
    draft = parse.restructure(
        item, {"question_segments": k, "answer_segments": cap, "prompt": None}
    )
    assert len(draft["question"]) == k and len(draft["answer"]) == n_answer
    record = load_images(draft)
    # only the photos of kept segments are listed, so the record stays valid
    assert len(record["images"]) == k + n_answer
    assert validate_record(record) == []


def _item(**opts) -> dict:
    return units_of(container(story("3")), **opts)["3"]


def test_restructure_default_split_point():
    record = parse.restructure(_item(), {})
    assert record["category"] == "SA" and record["field"] == "Literature"
    assert record["subfield"] == "Weddings and Ceremonies"
    assert [s["image"] for s in record["question"]] == [None, "@0"]
    # default: 1 question segment + 3 answer segments (MMIE Figure 1); the 5th is left out
    expected = [f"Sentence {o} of story 3." for o in (1, 2, 3)]
    assert [s["text"] for s in record["answer"]] == expected
    assert [s["image"] for s in record["answer"]] == ["@1", "@2", "@3"]
    assert record["source_metadata"]["storylets_dropped"] == 1
    assert record["gt_answer"] == NULL_GT_ANSWER and record["model"] == "gt"
    assert record["provenance"]["source_id"] == "3" and record["provenance"]["split"] == "train"


def test_restructure_options():
    record = parse.restructure(
        _item(), {"question_segments": 2, "prompt": None, "text_field": "text"}
    )
    expected = ["sentence 0 of story 3 .", "sentence 1 of story 3 ."]
    assert [s["text"] for s in record["question"]] == expected
    assert len(record["answer"]) == 3
    assert record["source_metadata"]["storylets"][1]["original_text"] == "Sentence 1 of story 3."
    record = parse.restructure(_item(), {"question_segments": 4, "prompt": "Go on."})
    assert record["question"][0]["text"] == "Go on." and len(record["question"]) == 5
    assert len(record["answer"]) == 1


def test_restructure_keeps_raw_text_and_rejects_empty_sentences():
    item = _item()
    item["storylets"][2]["original_text"] = "Ça va , très bien !  "
    record = parse.restructure(item, {})
    assert record["answer"][1]["text"] == "Ça va , très bien !  "
    item["storylets"][3]["original_text"] = "   "
    with pytest.raises(RecordError) as exc:
        parse.restructure(item, {})
    assert exc.value.reason == "empty_text" and "order 3" in exc.value.detail


def test_dii_captions_attached():
    dii_doc = {
        "albums": [],
        "images": [],
        "annotations": [
            [{"photo_flickr_id": "30", "text": "a man at a party .", "photo_order_in_story": 0}],
            {"photo_flickr_id": 30, "text": "two people smile .", "original_text": "Two smile."},
            [{"photo_flickr_id": "999", "text": "unrelated ."}],
        ],
    }
    dii = parse.parse_dii(dii_doc, "d")
    assert [c["text"] for c in dii["30"]] == ["a man at a party .", "two people smile ."]
    record = parse.restructure(_item(dii=dii), {})
    captions = record["source_metadata"]["dii_captions"]
    assert list(captions) == ["30", "31", "32", "33", "34"]
    assert len(captions["30"]) == 2 and captions["31"] == []
    assert "dii_captions" not in parse.restructure(_item(), {})["source_metadata"]
    with pytest.raises(RecordError) as exc:
        parse.parse_dii({"annotations": [[{"text": "no photo"}]]}, "d")
    assert exc.value.reason == "malformed_file"


@pytest.mark.parametrize(
    ("label", "subfield", "rule"),
    [
        ("fair", "Public Events and Festivals", "label"),
        ("Birthday Party", "Celebrations and Holidays", "label"),
        ("beach", "Nature and Outdoors", "label"),
        ("football_game", "Sports and Games Stories", "label"),
        ("family_reunion", "Family and Friends", "label"),
        ("our_wedding_day", "Weddings and Ceremonies", "keyword"),
        ("europe-trip", "Travel and Sightseeing", "keyword"),
        ("church", "Everyday Life", "default"),
        (None, "Everyday Life", "default"),
        ("", "Everyday Life", "default"),
    ],
)
def test_subfield_for(label, subfield, rule):
    assert parse.subfield_for(label) == (subfield, rule)


def test_mapping_table_targets_exist_and_cover_literature():
    table = source_table("vist")
    subfields = {v["subfield"] for v in table["vist_label"]["labels"].values()}
    assert subfields == set(taxonomy()["Literature"])
    assert parse.license_name("4") == "flickr:4 CC BY 2.0"
    assert parse.license_name("0") == "flickr:0 All Rights Reserved"
    assert parse.license_name(None) is None
    assert parse.license_name("42") == "flickr:42 (unknown Flickr licence id)"


def test_check_options(tmp_path):
    parse.check_options(dict(SAMPLE_OPTIONS))
    with pytest.raises(PipelineConfigError, match="does not exist"):
        parse.check_options({**SAMPLE_OPTIONS, "dii": str(tmp_path / "x.json")})
    with pytest.raises(PipelineConfigError, match="question_segments"):
        parse.check_options({**SAMPLE_OPTIONS, "question_segments": 5})
    with pytest.raises(PipelineConfigError, match="text_field"):
        parse.check_options({**SAMPLE_OPTIONS, "text_field": "caption"})


# ---------------------------------------------------------------------------------------------
# ReadVIST under TestPipeline
# ---------------------------------------------------------------------------------------------


def test_read_vist_bad_inputs_reconcile(tmp_path):
    sis = tmp_path / "sis"
    sis.mkdir()
    (tmp_path / "images" / "val").mkdir(parents=True)
    bad_story = story("22")
    bad_story[1]["worker_arranged_photo_order"] = 0
    no_key = story("23")
    del no_key[0]["photo_flickr_id"]
    escape = story("24")
    escape[4]["photo_flickr_id"] = "../24"
    doc = container([*story("21"), *bad_story, *no_key, *escape, {"text": "orphan"}])
    doc["annotations"].append([])
    (sis / "val.story-in-sequence.json").write_text(json.dumps(doc), encoding="utf-8")
    (sis / "broken.story-in-sequence.json").write_text('{"albums": [', encoding="utf-8")
    dii = tmp_path / "dii"
    dii.mkdir()
    (dii / "val.description-in-isolation.json").write_text(
        json.dumps(container([{"photo_flickr_id": "210", "text": "a cake ."}])), encoding="utf-8"
    )
    options = {
        "sis": str(sis / "*.story-in-sequence.json"),
        "images": str(tmp_path / "images"),
        "dii": str(dii / "*.json"),
    }
    expected_dead = [
        ("read", "malformed_file", "broken.story-in-sequence.json"),
        ("read", "malformed_story", "22"),
        ("read", "missing_key", "23"),
        ("read", "path_escapes_root", "24"),
        ("read", "missing_key", "val.story-in-sequence.json#annotations[20]"),
        ("read", "malformed_annotation", "val.story-in-sequence.json#annotations[21]"),
    ]
    # the reader's per-file step: the items it reads
    items, dead = read_units(ReadVIST(options))
    got = [(it["source_id"], it["dii"]["210"], it["storylets"][0]["image_found"]) for it in items]
    assert got == [("21", [{"text": "a cake ."}], False)]
    assert sorted((d["stage"], d["reason"], d["source_id"]) for d in dead) == sorted(expected_dead)
    # in a pipeline the reader restructures them (a missing image is LoadImages' to judge)
    with TestPipeline() as p:
        outputs = p | "ReadVIST" >> ReadVIST(options)
        ids = outputs["drafts"] | beam.Map(lambda d: d["provenance"]["source_id"])
        dead = outputs[DEAD] | beam.Map(lambda d: (d["stage"], d["reason"], d["source_id"]))
        assert_that(ids, equal_to(["21"]), label="Drafts")
        assert_that(dead, equal_to(expected_dead), label="DeadLetters")
    # 4 stories + 2 unassignable elements in val, 1 unreadable file: 7 units = 1 item + 6 dead.
    assert 1 + len(expected_dead) == 7


def test_read_vist_broken_dii_is_one_dead_letter_and_stories_go_on(tmp_path):
    """DII is optional: a broken DII file is one dead letter (named relative to its folder),
    and the stories of its split are still read, without its captions."""
    (tmp_path / "dii").mkdir()
    (tmp_path / "dii" / "test.description-in-isolation.json").write_text("nope", encoding="utf-8")
    options = {**SAMPLE_OPTIONS, "dii": str(tmp_path / "dii" / "*.json")}
    with TestPipeline() as p:
        outputs = p | "ReadVIST" >> ReadVIST(options)
        dead = outputs[DEAD] | beam.Map(lambda d: (d["reason"], d["source_id"]))
        n_items = outputs["drafts"] | beam.combiners.Count.Globally()
        assert_that(n_items, equal_to([EXPECTED_SPLITS["test"]]), label="Items")
        assert_that(
            dead,
            equal_to(
                [
                    *EXPECTED_READ_DEAD,
                    ("malformed_dii_file", "test.description-in-isolation.json"),
                ]
            ),
            label="DeadLetters",
        )


# ---------------------------------------------------------------------------------------------
# The sample, end to end
# ---------------------------------------------------------------------------------------------


def _sample_units() -> dict:
    path = str(SAMPLE_SIS)
    doc = parse.load_container(read_bytes(path, max_bytes=1 << 30), path)
    return by_unit(
        parse.iter_sis_units(
            doc,
            split="test",
            source_file=path,
            images_root=SAMPLE_OPTIONS["images"],
            image_stems=list_dir_stems(str(SAMPLE / "images" / "test")),
            text_field="text",
        )
    )


def test_every_good_sample_story_becomes_a_valid_record():
    units = _sample_units()
    assert [(r.reason, u) for u, r in units.items() if isinstance(r, RecordError)] == (
        EXPECTED_READ_DEAD
    )
    items = {u: r for u, r in units.items() if not isinstance(r, RecordError)}
    assert len(items) == EXPECTED_SPLITS["test"]
    subfields = set()
    for sid, item in items.items():
        draft = parse.restructure(item, SAMPLE_OPTIONS)
        if sid == MISSING_PHOTO_STORY:
            with pytest.raises(RecordError) as exc:
                load_images(draft)
            assert exc.value.reason == "image_missing" and "13650765.jpg" in exc.value.detail
            continue
        record = load_images(copy.deepcopy(draft))
        assert validate_record(record) == [], sid
        assert record["id"] == f"SA_vist_test_{sid}"
        assert len(record["images"]) == 4  # 1 + 3 segments by default
        assert all(im["width"] >= 150 and im["height"] >= 150 for im in record["images"])
        subfields.add(record["subfield"])
    assert len(subfields) == 5
    png = items["990009"]["storylets"][4]
    assert png["image_uri"].endswith("4858576954.png") and png["image_found"]


def test_sample_is_reproducible_and_small(tmp_path):
    from tools import make_sample_vist

    make_sample_vist.write(tmp_path)
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        rel = path.relative_to(tmp_path)
        assert (SAMPLE / rel).read_bytes() == path.read_bytes(), rel
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 1_500_000
    raw = json.loads(RAW_RECORD.read_text("utf-8"))
    sis = json.loads(SAMPLE_SIS.read_text("utf-8"))
    assert sis["albums"][0] == raw["albums"][0] and sis["images"][0] == raw["images"][0]
    assert sis["annotations"][0] == raw["annotations"][0]
