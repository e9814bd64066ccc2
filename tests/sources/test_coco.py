"""Tests for the COCO 2017 reader (sources/coco): parsing on the real mini records, the
instruction generator, dead letters, ReadCOCO under TestPipeline, and sample -> valid records.

The annotation files in sample/coco/annotations are unmodified copies of real COCO val2017
records (79 images, 395 captions; the instances file is a 15-image, 121-annotation subset).
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.images import load_images
from schemas.deadletter import DEAD, STAGE_READ, dead_letter
from schemas.errors import PipelineConfigError, RecordError
from schemas.records import IF_COMPONENT_TYPES
from schemas.validation import validate_record
from sources.coco import ReadCOCO, instructions, join, parse
from tools.sample_images import make_image

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample" / "coco"
CAPTIONS = SAMPLE / "annotations" / "captions_val2017.json"
INSTANCES = SAMPLE / "annotations" / "instances_val2017.json"
OPTIONS = {"root": str(SAMPLE), "split": "val"}


# ---------------------------------------------------------------------------------------
# helpers (fixtures live here: tests/conftest.py belongs to the lead)
# ---------------------------------------------------------------------------------------


def real_files() -> tuple[dict, dict]:
    return json.loads(CAPTIONS.read_text("utf-8")), json.loads(INSTANCES.read_text("utf-8"))


def run_units(captions, instances, options=None, **kw):
    options = options or OPTIONS
    return list(
        join.iter_units(
            captions,
            instances,
            options=options,
            captions_file=str(Path(options["root"]) / "annotations/captions_val2017.json"),
            instances_file=str(Path(options["root"]) / "annotations/instances_val2017.json"),
            **kw,
        )
    )


def split_units(units):
    """(items, dead letters) from ``join.iter_units``'s items and RecordErrors."""
    items = [u for u in units if not isinstance(u, RecordError)]
    dead = [
        dead_letter(STAGE_READ, u.reason, "coco", u.source_id, u.detail)
        for u in units
        if isinstance(u, RecordError)
    ]
    return items, dead


@pytest.fixture(scope="module")
def real_items() -> list[dict]:
    items, dead = split_units(run_units(*real_files()))
    assert dead == []
    return items


def item_by_id(items, image_id: int) -> dict:
    return next(i for i in items if i["source_id"] == str(image_id))


def write_root(tmp_path: Path, captions: dict, instances: dict, images: bool = True) -> dict:
    """A COCO root in tmp_path with the given files and one JPEG per captions image."""
    (tmp_path / "annotations").mkdir(parents=True, exist_ok=True)
    (tmp_path / "annotations" / "captions_val2017.json").write_text(json.dumps(captions))
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(instances))
    (tmp_path / "val2017").mkdir(exist_ok=True)
    if images:
        for im in captions.get("images", []):
            name = im.get("file_name")
            if isinstance(name, str) and "/" not in name and name not in ("", ".", ".."):
                data = make_image(name, 160, 160)
                (tmp_path / "val2017" / name).write_bytes(data)
    return {"root": str(tmp_path), "split": "val"}


def small_files() -> tuple[dict, dict]:
    """Three real images (one with instances, including a crowd RLE) and their records."""
    captions, instances = real_files()
    keep = {255165, 519611, 397133}
    captions["images"] = [im for im in captions["images"] if im["id"] in keep]
    captions["annotations"] = [a for a in captions["annotations"] if a["image_id"] in keep]
    instances["images"] = [im for im in instances["images"] if im["id"] in keep]
    instances["annotations"] = [a for a in instances["annotations"] if a["image_id"] in keep]
    return captions, instances


# ---------------------------------------------------------------------------------------
# parsing the real mini records
# ---------------------------------------------------------------------------------------


def test_real_files_counts(real_items):
    assert len(real_items) == 79
    assert sum(len(i["captions"]) for i in real_items) == 395
    assert sum(len(i["instances"]) for i in real_items) == 121
    assert sum(1 for i in real_items if i["instances"]) == 15
    assert [i["source_id"] for i in real_items[:3]] == ["397133", "349860", "217285"]
    assert all(isinstance(i["source_id"], str) for i in real_items)


def test_captions_raw_in_file_order_with_ids(real_items):
    item = item_by_id(real_items, 205401)
    assert [c["id"] for c in item["captions"]] == ["221865", "246963", "248502", "248886", "253566"]
    # raw text unchanged: trailing space and capitals kept
    assert item["captions"][1]["text"] == "Lake or river beach with plane in shallow water. "
    assert item["captions"][3]["text"] == "A BIPLANE AND A SMALL BOAT OUT ON THE WATER"


def test_image_metadata_and_licence(real_items):
    item = item_by_id(real_items, 397133)
    im = item["image"]
    assert im["file_name"] == "000000397133.jpg"
    assert im["uri"] == str(SAMPLE / "val2017" / "000000397133.jpg")
    assert (im["width"], im["height"]) == (640, 427)
    assert im["license_id"] == 4 and im["license_name"] == "Attribution License"
    assert im["license_url"] == "http://creativecommons.org/licenses/by/2.0/"
    assert im["coco_url"] == "http://images.cocodataset.org/val2017/000000397133.jpg"
    assert im["date_captured"] == "2013-11-14 17:02:52"
    assert item["source_file"].endswith("/annotations/captions_val2017.json")
    assert item["instances_file"] == "annotations/instances_val2017.json"


def test_crowd_rle_with_big_id(real_items):
    item = item_by_id(real_items, 255165)
    crowd = [x for x in item["instances"] if x["id"] == "908400255165"]
    assert len(crowd) == 1
    inst = crowd[0]
    assert inst["iscrowd"] == 1
    assert inst["segmentation"] == {"kind": "rle", "size": [480, 640], "runs": 603}
    assert inst["category_id"] == 84 and inst["category"] == "book"
    assert inst["supercategory"] == "indoor"
    assert inst["bbox"] == [122, 270, 517, 209] and inst["area"] == 9476
    kinds = Counter(x["segmentation"]["kind"] for i in real_items for x in i["instances"])
    assert kinds == {"polygons": 116, "rle": 5}
    # the big mask arrays are not carried in items
    assert "counts" not in json.dumps(real_items)
    assert len(pickle.dumps(item)) < 20_000


def test_non_contiguous_category_ids():
    _, instances = real_files()
    table = join.category_table(instances, "instances")
    assert len(table) == 80
    assert max(table) == 90 and 12 not in table and 83 not in table
    assert table[84]["name"] == "book" and table[90]["name"] == "toothbrush"
    assert table[1] == {"id": 1, "name": "person", "supercategory": "person"}


def test_categories_joined_by_id(real_items):
    names = {x["category"] for x in item_by_id(real_items, 551780)["instances"]}
    assert names == {"clock", "spoon"}  # ids 85 and 50 (the 50th category is orange)
    names = {x["category"] for x in item_by_id(real_items, 357501)["instances"]}
    assert names == {"scissors"}  # category id 87


def test_counts_exclude_crowd(real_items):
    stats = instructions.category_stats(item_by_id(real_items, 34417)["instances"])
    assert stats["donut"]["count"] == 13 and stats["donut"]["crowd"] == 1
    assert stats["person"]["count"] == 6 and stats["person"]["crowd"] == 0
    available = instructions._available_types(stats)
    assert "donut" not in available["math"]  # has a crowd region: not countable
    assert available["math"] == ["person", "tie"]
    assert "donut" in available["mention"]  # non-crowd instances exist
    # over many seeds, math never counts a category with a crowd region or more than 10
    item = item_by_id(real_items, 34417)
    seen = set()
    for seed in range(200):
        for comp in instructions.build_components(item, {"seed": seed}):
            if comp["type"] == "math":
                f = comp["facts"]
                assert f["category"] in ("person", "tie")
                assert f["count"] == stats[f["category"]]["count"]
                seen.add(f["category"])
    assert seen


def test_math_counts_are_the_annotation_counts(real_items):
    for seed in range(30):
        for item in real_items:
            stats = instructions.category_stats(item["instances"])
            for comp in instructions.build_components(item, {"seed": seed}):
                if comp["type"] == "math":
                    s = stats[comp["facts"]["category"]]
                    assert s["crowd"] == 0 and 1 <= s["count"] <= 10
                    assert comp["facts"]["count"] == s["count"]


# ---------------------------------------------------------------------------------------
# instructions
# ---------------------------------------------------------------------------------------


def test_every_record_instruction_is_well_formed(real_items):
    types_seen = Counter()
    for seed in range(10):
        opts = {**OPTIONS, "seed": seed}
        for item in real_items:
            rec = parse.restructure(item, opts)
            comps = rec["instruction"]["components"]
            assert 2 <= len(comps) <= 5
            assert sum(c["weight"] for c in comps) == 10
            assert [c["weight"] for c in comps] == instructions.WEIGHTS[len(comps)]
            assert comps[0]["type"] == "describe"
            assert comps[0]["weight"] == max(c["weight"] for c in comps)
            assert comps[0]["facts"]["captions"] == [c["text"] for c in item["captions"]]
            assert len({c["type"] for c in comps}) == len(comps)
            for c in comps:
                assert c["type"] in IF_COMPONENT_TYPES and c["type"] != "textual"
                assert c["facts"] and c["text"]
            assert rec["instruction"]["complexity"] in (
                "basic",
                "intermediate",
                "advanced",
                "complex",
                "creative",
            )
            if not item["instances"]:
                assert {c["type"] for c in comps} <= {
                    "describe",
                    "length_limit",
                    "grammar",
                    "linguistics",
                }
            text = rec["question"][0]["text"]
            assert text.startswith(comps[0]["text"] + ". ")
            for c in comps[1:]:
                assert c["text"][1:] in text
            types_seen.update(c["type"] for c in comps)
    assert set(types_seen) == set(IF_COMPONENT_TYPES) - {"textual"}


def test_components_are_grounded(real_items):
    for seed in range(20):
        for item in real_items:
            stats = instructions.category_stats(item["instances"])
            comps = instructions.build_components(item, {"seed": seed})
            types = {c["type"] for c in comps}
            for c in comps:
                f = c["facts"]
                if c["type"] == "mention":
                    for name, count in zip(f["categories"], f["counts"]):
                        assert stats[name]["count"] == count >= 1
                        assert name in c["text"] or instructions.plural(name) in c["text"]
                elif c["type"] == "perspective":
                    assert stats[f["role"]]["supercategory"] in ("person", "animal")
                    assert stats[f["role"]]["count"] >= 1
                elif c["type"] == "length_limit" and f["unit"] == "sentences":
                    assert "poem" not in {x["facts"].get("form") for x in comps}
                elif c["type"] == "grammar" and "perspective" in types:
                    assert f["rule"] != "first_person"


def test_instruction_text_and_reference(real_items):
    item = item_by_id(real_items, 101787)
    rec = parse.restructure(item, {**OPTIONS, "seed": 0})
    comps = rec["instruction"]["components"]
    assert rec["question"][0]["text"] == instructions.instruction_text(comps)
    ref = rec["answer"][0]["text"]
    assert rec["gt_answer"] == rec["answer"]
    for cap in item["captions"]:
        assert f"- {cap['text']}\n" in ref  # verbatim, trailing spaces included
    assert "Annotated objects: airplane x1." in ref
    for i, c in enumerate(comps, 1):
        assert f"{i}. {c['type']} ({c['weight']}/10): " in ref
    crowd_ref = parse.restructure(item_by_id(real_items, 255165), OPTIONS)["answer"][0]["text"]
    assert "book x13 (+1 crowd region)" in crowd_ref
    plain = parse.restructure(item_by_id(real_items, 397133), OPTIONS)["answer"][0]["text"]
    assert "Annotated objects: none" in plain


def test_instruction_text_joining():
    comps = [
        {"text": "Describe the scene in this image", "type": "describe"},
        {"text": "Use exactly two sentences", "type": "length_limit"},
        {"text": "Mention the dog", "type": "mention"},
        {"text": "Write in the present tense", "type": "grammar"},
    ]
    assert instructions.instruction_text(comps) == (
        "Describe the scene in this image. Use exactly two sentences, mention the dog and "
        "write in the present tense."
    )
    assert instructions.instruction_text(comps[:2]) == (
        "Describe the scene in this image. Use exactly two sentences."
    )


def test_determinism_and_seed(real_items):
    def run(seed):
        return [parse.restructure(i, {**OPTIONS, "seed": seed}) for i in real_items]

    a, b, c = run(0), run(0), run(1)
    assert [r["instruction"] for r in a] == [r["instruction"] for r in b]
    assert [r["question"] for r in a] == [r["question"] for r in b]
    changed = sum(x["instruction"] != y["instruction"] for x, y in zip(a, c))
    assert changed > 20
    assert [r["id"] for r in a] == [r["id"] for r in c]  # ids do not depend on the seed


def test_chooser_is_stable():
    # sha256-based: independent of PYTHONHASHSEED and of Python's random module
    pick = instructions.Chooser(0, "397133")
    digest = hashlib.sha256(b"coco|0|397133|describe").digest()
    assert (
        pick.choice("describe", instructions._DESCRIBE)
        == instructions._DESCRIBE[int.from_bytes(digest[:8], "big") % len(instructions._DESCRIBE)]
    )
    assert 0 < pick.unit("x") < 1
    weights = {"a": 1, "b": 1, "c": 1}
    assert pick.sample("t", weights, 2) == instructions.Chooser(0, "397133").sample("t", weights, 2)
    other = instructions.Chooser(1, "397133")
    assert any(pick.unit(str(i)) != other.unit(str(i)) for i in range(5))


def test_component_range_options(real_items):
    for item in real_items:
        comps = instructions.build_components(item, {"min_components": 4, "max_components": 4})
        assert len(comps) == 4
        assert [c["weight"] for c in comps] == [4, 2, 2, 2]
    rich = item_by_id(real_items, 255165)
    comps = instructions.build_components(rich, {"min_components": 5, "max_components": 5})
    assert [c["weight"] for c in comps] == [2, 2, 2, 2, 2]
    bare = item_by_id(real_items, 397133)
    with pytest.raises(RecordError) as err:
        parse.restructure(bare, {**OPTIONS, "min_components": 5})
    assert err.value.reason == "not_enough_facts"
    for item in real_items:
        comps = instructions.build_components(item, {"min_components": 2, "max_components": 2})
        assert [c["weight"] for c in comps] == [6, 4]


def test_complexity_definition():
    def comps(*types, form=None):
        out = [{"type": "describe", "facts": {"captions": ["x"]}}]
        for t in types:
            out.append({"type": t, "facts": {"form": form} if t == "linguistics" else {"x": 1}})
        return out

    assert instructions.complexity(comps("length_limit")) == "basic"
    assert instructions.complexity(comps("mention")) == "basic"
    assert instructions.complexity(comps("math")) == "intermediate"
    assert instructions.complexity(comps("grammar")) == "intermediate"
    assert instructions.complexity(comps("length_limit", "mention")) == "intermediate"
    assert instructions.complexity(comps("length_limit", "grammar")) == "advanced"
    assert instructions.complexity(comps("mention", "math", "length_limit")) == "complex"
    assert instructions.complexity(comps("perspective")) == "creative"
    assert instructions.complexity(comps("linguistics", form="poem")) == "creative"
    assert instructions.complexity(comps("mention", "math", "grammar", "length_limit")) == "complex"


def test_field_from_dominant_supercategory(real_items):
    def inst(sc, area, crowd=0):
        return {"supercategory": sc, "area": area, "iscrowd": crowd}

    assert instructions.dominant_supercategory([]) is None
    mixed = [inst("food", 10), inst("animal", 5), inst("animal", 6)]
    assert instructions.dominant_supercategory(mixed) == "animal"
    assert (
        instructions.dominant_supercategory([inst("vehicle", 5), inst("food", 5)]) == "food"
    )  # tie
    assert (
        instructions.dominant_supercategory([inst("person", 1), inst("indoor", 9, crowd=1)])
        == "indoor"
    )
    expect = {
        397133: ("Art", "Scene Description", None),
        519611: ("Education", "Animals and Nature", "animal"),
        101787: ("Physics", "Vehicles and Transport", "vehicle"),
        255165: ("EECS", "Consumer Electronics", "electronic"),
        553664: ("Education", "Everyday Objects", "indoor"),  # the crowd book region counts
        34417: ("Health", "Food and Nutrition", "food"),
        802: ("EECS", "Home Appliances", "appliance"),
        217285: ("Art", "People and Portraits", "person"),
    }
    for image_id, (field, subfield, sc) in expect.items():
        rec = parse.restructure(item_by_id(real_items, image_id), OPTIONS)
        assert (rec["field"], rec["subfield"]) == (field, subfield)
        assert rec["source_metadata"]["dominant_supercategory"] == sc
    item = copy.deepcopy(item_by_id(real_items, 519611))
    item["instances"][0]["supercategory"] = "martian"
    with pytest.raises(RecordError) as err:
        parse.restructure(item, OPTIONS)
    assert err.value.reason == "unmapped_supercategory"


def test_fields_table_covers_the_twelve_supercategories():
    _, instances = real_files()
    table = parse.source_table("coco")
    supers = {c["supercategory"] for c in instances["categories"]}
    assert supers == set(table["dominant_supercategory"])
    assert table["no_instances"] == {"field": "Art", "subfield": "Scene Description"}


def test_record_fields(real_items):
    item = item_by_id(real_items, 255165)
    rec = parse.restructure(item, OPTIONS)
    assert rec["id"] == "IF_coco_val_255165"
    assert rec["category"] == "IF" and rec["question_format"] == "open_ended"
    assert rec["provenance"] == {
        "source": "coco",
        "split": "val",
        "source_id": "255165",
        "license": parse.LICENSE,
        "source_file": item["source_file"],
    }
    assert rec["provenance"]["source_file"].endswith("/annotations/captions_val2017.json")
    assert rec["images"][0]["license"] == item["image"]["license_name"]
    meta = rec["source_metadata"]
    assert meta["caption_ids"] == [c["id"] for c in item["captions"]]
    assert meta["flickr_url"] == item["image"]["flickr_url"]
    assert meta["category_counts"]["book"] == {"count": 13, "crowd": 1}
    assert "908400255165" in {x["id"] for x in meta["instances"]}
    json.dumps(meta)  # plain JSON


# ---------------------------------------------------------------------------------------
# dead letters and malformed input
# ---------------------------------------------------------------------------------------


def test_unknown_image_id_and_no_captions():
    captions, instances = small_files()
    captions["annotations"].append({"image_id": 999, "id": 1, "caption": "orphan"})
    instances["annotations"].append(dict(instances["annotations"][0], image_id=998, id=7))
    captions["annotations"] = [a for a in captions["annotations"] if a["image_id"] != 519611]
    units = run_units(captions, instances)
    items, dead = split_units(units)
    assert sorted(i["source_id"] for i in items) == ["255165", "397133"]
    reasons = sorted((d["reason"], d["source_id"]) for d in dead)
    assert reasons == [
        ("no_captions", "519611"),
        ("unknown_image_id", "caption-1"),
        ("unknown_image_id", "instance-7"),
    ]
    assert all(d["stage"] == "read" and d["source"] == "coco" for d in dead)
    # every unit accounted for: 3 images + 2 orphan annotations
    assert len(units) == 5


def test_missing_keys():
    captions, instances = small_files()
    del captions["images"][0]["file_name"]
    del captions["annotations"][-1]["image_id"]
    del instances["annotations"][-1]["image_id"]
    items, dead = split_units(run_units(captions, instances))
    assert len(items) == 2
    reasons = Counter(d["reason"] for d in dead)
    assert reasons == {"missing_key": 3}
    detail = next(d["detail"] for d in dead if d["source_id"] == str(captions["images"][0]["id"]))
    assert "images[0]" in detail and "file_name" in detail
    no_caption = small_files()[0]
    del no_caption["annotations"][0]["caption"]
    _, dead = split_units(run_units(no_caption, small_files()[1]))
    assert [d["reason"] for d in dead] == ["missing_key"]
    assert dead[0]["source_id"] == str(no_caption["annotations"][0]["image_id"])


@pytest.mark.parametrize("name", ["../000000397133.jpg", "sub/x.jpg", "/etc/passwd", ".."])
def test_path_escapes_root(name):
    captions, instances = small_files()
    target = next(im for im in captions["images"] if im["id"] == 397133)
    target["file_name"] = name
    items, dead = split_units(run_units(captions, instances))
    assert len(items) == 2
    assert [(d["reason"], d["source_id"]) for d in dead] == [("path_escapes_root", "397133")]


def test_bad_values_and_duplicates():
    captions, instances = small_files()
    captions["images"].append(dict(captions["images"][0]))  # duplicate id
    captions["images"][1]["license"] = 99
    items, dead = split_units(run_units(captions, instances))
    assert len(items) == 2
    assert sorted(d["reason"] for d in dead) == ["duplicate_image_id", "unknown_license"]


def _with_instance(change):
    captions, instances = small_files()
    ann = next(a for a in instances["annotations"] if a["id"] == 908400255165)
    change(ann)
    return run_units(captions, instances)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda a: a["segmentation"]["counts"].append(5), "bad_segmentation"),
        (lambda a: a["segmentation"].__setitem__("size", [10, 10]), "bad_segmentation"),
        (lambda a: a["segmentation"].pop("counts"), "bad_segmentation"),
        (lambda a: a["segmentation"].__setitem__("counts", "bad string!"), "bad_segmentation"),
        (lambda a: a.__setitem__("segmentation", [[1, 2, 3]]), "bad_segmentation"),
        (lambda a: a.__setitem__("segmentation", []), "bad_segmentation"),
        (lambda a: a.__setitem__("segmentation", 5), "bad_segmentation"),
        (lambda a: a.__setitem__("category_id", 12), "unknown_category"),
        (lambda a: a.__setitem__("bbox", [1, 2, 3]), "bad_value"),
        (lambda a: a.pop("area"), "missing_key"),
    ],
)
def test_bad_instance_dead_letters_its_image(change, reason):
    items, dead = split_units(_with_instance(change))
    assert len(items) == 2
    assert [(d["reason"], d["source_id"]) for d in dead] == [(reason, "255165")]
    assert "annotations[" in dead[0]["detail"]


def test_compressed_rle_accepted():
    def compress(a):
        a["segmentation"] = {"counts": "PbZ21n=0O2N1O1N", "size": [480, 640]}

    items, dead = split_units(_with_instance(compress))
    assert dead == []
    inst = next(x for i in items for x in i["instances"] if x["id"] == "908400255165")
    assert inst["segmentation"] == {"kind": "rle_compressed", "size": [480, 640], "chars": 15}


def test_polygon_shape():
    seg = join.parse_segmentation([[0, 0, 10, 0, 10, 10], [1.5, 2.5, 3, 4]], 20, 20, "x")
    assert seg == {"kind": "polygons", "parts": 2, "points": 5}
    with pytest.raises(RecordError):
        join.parse_segmentation([[0, 0, "a", 1]], 20, 20, "x")


def test_bad_instances_file_dead_letters_every_image():
    captions, _ = small_files()
    units = run_units(captions, {"annotations": []})  # no categories
    items, dead = split_units(units)
    assert items == [] and len(dead) == 3
    assert {d["reason"] for d in dead} == {"bad_instances_file"}
    err = RecordError("bad_json", "instances file x: JSONDecodeError")
    _, dead = split_units(run_units(captions, None, instances_error=err))
    assert len(dead) == 3 and all("bad_json" in d["detail"] for d in dead)


def test_captions_file_without_images_is_one_dead_letter():
    units = run_units({"annotations": []}, real_files()[1])
    assert [(type(u), u.reason) for u in units] == [(RecordError, "missing_key")]


def test_images_with_no_instances_are_kept(real_items):
    bare = [i for i in real_items if not i["instances"]]
    assert len(bare) == 64
    for item in bare:
        rec = parse.restructure(item, OPTIONS)
        assert (rec["field"], rec["subfield"]) == ("Art", "Scene Description")


# ---------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------


def test_check_options(tmp_path):
    parse.check_options(dict(OPTIONS))
    parse.check_options({**OPTIONS, "captions": str(CAPTIONS), "instances": str(INSTANCES)})
    with pytest.raises(PipelineConfigError, match="does not exist"):
        parse.check_options({"root": str(tmp_path)})
    with pytest.raises(PipelineConfigError, match="does not exist"):
        parse.check_options({**OPTIONS, "split": "train"})
    with pytest.raises(PipelineConfigError, match="larger than"):
        parse.check_options({**OPTIONS, "min_components": 4, "max_components": 3})
    with pytest.raises(PipelineConfigError, match="split"):
        parse.check_options({**OPTIONS, "split": "test"})


# ---------------------------------------------------------------------------------------
# ReadCOCO under TestPipeline
# ---------------------------------------------------------------------------------------


def test_read_coco_bad_inputs(tmp_path):
    captions, instances = small_files()
    captions["annotations"].append({"image_id": 4242, "id": 5, "caption": "orphan"})
    captions["annotations"] = [a for a in captions["annotations"] if a["image_id"] != 519611]
    captions["images"].append(dict(captions["images"][0], id=77, file_name="../up.jpg"))
    opts = write_root(tmp_path, captions, instances)
    with TestPipeline() as p:
        out = p | "ReadCOCO" >> ReadCOCO(opts)
        ids = out["drafts"] | "Ids" >> beam.Map(lambda d: d["provenance"]["source_id"])
        reasons = out[DEAD] | "Reasons" >> beam.Map(lambda d: (d["reason"], d["source_id"]))
        assert_that(ids, equal_to(["255165", "397133"]), "items")
        assert_that(
            reasons,
            equal_to(
                [
                    ("no_captions", "519611"),
                    ("unknown_image_id", "caption-5"),
                    ("path_escapes_root", "77"),
                ]
            ),
            "dead",
        )


def test_read_coco_bad_json(tmp_path):
    opts = write_root(tmp_path, {"images": []}, {})
    (tmp_path / "annotations" / "captions_val2017.json").write_text("{not json")
    with TestPipeline() as p:
        out = p | "ReadCOCO" >> ReadCOCO(opts)
        reasons = out[DEAD] | "Reasons" >> beam.Map(lambda d: (d["reason"], d["source_id"]))
        assert_that(out["drafts"], equal_to([]), "drafts")
        assert_that(reasons, equal_to([("bad_json", "annotations/captions_val2017.json")]), "dead")


# ---------------------------------------------------------------------------------------
# the sample: every image -> a valid record
# ---------------------------------------------------------------------------------------


def test_sample_annotations_are_the_real_files():
    shared = REPO.parent / "shared" / "samples" / "coco"
    if not shared.is_dir():
        pytest.skip("the shared samples are not next to the repository")
    assert CAPTIONS.read_bytes() == (shared / "captions_val2017_mini.json").read_bytes()
    assert INSTANCES.read_bytes() == (shared / "instances_val2017_mini_subset.json").read_bytes()


def test_every_sample_image_gives_a_valid_record(real_items):
    ids = set()
    for item in real_items:
        draft = parse.restructure(item, OPTIONS)
        record = load_images(draft)
        assert validate_record(record) == [], record["id"]
        assert not any(tok in record["id"][3:] for tok in ("SA", "PBL", "MSR", "IF"))
        im = record["images"][0]
        assert (im["width"], im["height"]) == (item["image"]["width"], item["image"]["height"])
        assert im["format"] == "jpeg"
        assert im["license"] == item["image"]["license_name"]
        ids.add(record["id"])
    assert len(ids) == 79
