"""Pipeline stages under TestPipeline: good records pass, every bad one is a dead letter."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.images import load_images
from pipelines.transforms.images import LoadImages
from pipelines.transforms.stats import build_stats
from pipelines.transforms.validate import DropDuplicateIds, PickOneFn, ValidateRecords
from schemas.deadletter import DEAD
from tests.conftest import make_draft
from tools.sample_images import make_image


def _with_uri_image(uri: str) -> dict:
    draft = make_draft()
    draft["images"][0]["bytes"] = None
    draft["images"][0]["uri"] = uri
    return draft


def test_load_images_names_files_by_content():
    png = make_image("x", fmt="PNG")
    rec = load_images(make_draft(n_images=2, image_bytes=png))
    # the same picture twice is listed once, and both segments point at it
    assert len(rec["images"]) == 1
    im = rec["images"][0]
    assert im["format"] == "png" and im["path"] == f"images/{im['sha256']}.png"
    assert [s["image"] for s in rec["question"]] == [im["path"], im["path"]]
    assert (im["width"], im["height"]) == (256, 192)


def test_load_images_reads_uris(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(make_image("uri"))
    rec = load_images(_with_uri_image(str(path)))
    # a draft made outside a reader: its file by name, never by a path of this machine
    assert rec["images"][0]["source_uri"] == "a.jpg"
    assert rec["images"][0]["format"] == "jpeg"
    (tmp_path / "sub").mkdir()
    nested = tmp_path / "sub" / "b.jpg"
    nested.write_bytes(make_image("uri"))
    draft = _with_uri_image(str(nested))
    draft["images"][0]["root"] = str(tmp_path)
    assert load_images(draft)["images"][0]["source_uri"] == "sub/b.jpg"  # relative to its root
    draft["images"][0]["source_uri"] = "https://example.org/b.jpg"  # what the source publishes
    assert load_images(draft)["images"][0]["source_uri"] == "https://example.org/b.jpg"


def test_bad_images_become_dead_letters_with_distinct_reasons(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_bytes(b"this is not an image")
    (tmp_path / "cut.jpg").write_bytes(make_image("cut")[:20])
    (tmp_path / "icon.ico").write_bytes(_ico_bytes())
    (tmp_path / "folder.jpg").mkdir()
    good = make_draft()
    drafts = [
        good,
        _with_uri_image(str(tmp_path / "missing.jpg")),
        _with_uri_image(str(tmp_path / "empty.jpg")),
        _with_uri_image(str(tmp_path / "text.jpg")),
        _with_uri_image(str(tmp_path / "cut.jpg")),
        _with_uri_image(str(tmp_path / "icon.ico")),
        _with_uri_image(str(tmp_path / "folder.jpg")),
    ]
    with TestPipeline() as p:
        out = p | beam.Create(drafts) | LoadImages()
        assert_that(out.records | "Ids" >> beam.Map(lambda r: r["id"]), equal_to([good["id"]]))
        reasons = out[DEAD] | beam.Map(lambda d: (d["stage"], d["reason"]))
        assert_that(
            reasons,
            equal_to(
                [
                    ("load_images", "image_missing"),
                    ("load_images", "image_empty"),
                    ("load_images", "image_undecodable"),
                    ("load_images", "image_undecodable"),
                    ("load_images", "image_unsupported_format"),
                    ("load_images", "image_not_regular_file"),  # the folder
                ]
            ),
            label="Reasons",
        )


def _ico_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, "ICO")
    return buf.getvalue()


def test_validate_records_dead_letters_name_the_pointer():
    good = load_images(make_draft())
    bad = load_images(make_draft())
    bad["subfield"] = "Not A Subfield"
    with TestPipeline() as p:
        out = p | beam.Create([good, bad]) | ValidateRecords()
        assert_that(out.valid | beam.Map(lambda r: r["subfield"]), equal_to(["Algebra"]))
        details = out[DEAD] | beam.Map(lambda d: (d["reason"], "/subfield" in d["detail"]))
        assert_that(details, equal_to([("schema_invalid", True)]), label="Dead")


def test_duplicate_ids_keep_one_deterministically():
    a = load_images(make_draft())
    b = load_images(make_draft())
    b["provenance"] = dict(b["provenance"], source_file="a-first.parquet")
    for order in ([a, b], [b, a]):
        with TestPipeline() as p:
            out = p | beam.Create(order) | DropDuplicateIds()
            kept = out.unique | beam.Map(lambda r: r["provenance"]["source_file"])
            assert_that(kept, equal_to(["a-first.parquet"]))
            assert_that(
                out[DEAD] | beam.Map(lambda d: d["reason"]), equal_to(["duplicate_id"]), label="D"
            )


def test_duplicate_id_names_the_kept_file_without_its_folder():
    a = load_images(make_draft())
    b = load_images(make_draft())
    a["provenance"] = dict(a["provenance"], source_file="/home/someone/data/a.json")
    b["provenance"] = dict(b["provenance"], source_file="/home/someone/data/b.json")
    outputs = list(PickOneFn().process((a["id"], [b, a])))
    kept, dead = outputs[0], outputs[1].value
    assert kept["provenance"]["source_file"].endswith("a.json")
    assert dead["detail"].endswith("from a.json") and "/home/someone" not in dead["detail"]


def test_build_stats_reconciles_and_lists_idle_sources():
    counts = [
        (("read", "vist", "", ""), 10),
        (("written", "vist", "", ""), 7),
        (("dropped", "vist", "load_images", "image_missing"), 2),
        (("dropped", "vist", "read", "malformed_story"), 1),
        (("images_dropped", "vist", "load_images", "image_too_small"), 3),
        (("read", "remi", "", ""), 3),
        (("written", "remi", "", ""), 1),
    ]
    stats = build_stats(counts, {"sources": ["vist", "remi", "coco"], "build": "t"})
    assert stats["sources"]["vist"]["dropped"] == {"image_missing": 2, "malformed_story": 1}
    assert stats["sources"]["vist"]["dropped_by_stage"]["read"] == {"malformed_story": 1}
    assert stats["sources"]["vist"]["images_dropped"] == {"image_too_small": 3}
    assert stats["sources"]["vist"]["reconciled"] is True  # image drops are not record drops
    assert stats["sources"]["remi"]["reconciled"] is False
    assert stats["sources"]["coco"] == {
        "read": 0, "written": 0, "dropped": {}, "dropped_by_stage": {}, "images_dropped": {},
        "reconciled": True,
    }  # fmt: skip
    assert stats["reconciled"] is False
    assert stats["totals"]["read"] == 13 and stats["totals"]["written"] == 8
