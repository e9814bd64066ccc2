"""Issue 3, item 1: every image is decoded under limits; each failure has its own reason."""

from __future__ import annotations

import io
from dataclasses import asdict, fields, replace

import apache_beam as beam
import imagehash
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from pipelines.config import ImagesConfig, LimitsConfig
from pipelines.images import ImageLimits, inspect_image, load_images
from pipelines.transforms.images import LoadImages
from schemas.deadletter import DEAD
from schemas.errors import RecordError
from schemas.store import ImageStore
from tests.conftest import make_draft
from tools.sample_images import make_image

LIMITS = ImageLimits.defaults(max_pixels=50_000_000)
DROP_SEGMENT_NOT_EXEMPT = ImagesConfig.from_block(
    {"on_bad_image": "drop_segment", "exempt_sources": []}
)


def _enc(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _base() -> Image.Image:
    return Image.open(io.BytesIO(make_image("integrity", 300, 200))).convert("RGB")


def bad_fixtures() -> dict[str, bytes]:
    """One fixture per failure kind, keyed by the expected reason."""
    base = _base()
    jpg = _enc(base, "JPEG", quality=90)
    png = _enc(base, "PNG")
    i = png.index(b"IDAT") + 40
    broken_png = png[:i] + bytes(b ^ 0xFF for b in png[i : i + 30]) + png[i + 30 :]
    gif = io.BytesIO()
    base.save(gif, "GIF", save_all=True, append_images=[base.rotate(90)])
    webp = io.BytesIO()
    base.save(webp, "WEBP", save_all=True, append_images=[base.rotate(90)])
    return {
        "image_empty": b"",
        "image_undecodable": b"this is text, not a picture",
        "image_truncated": jpg[: len(jpg) * 6 // 10],
        "image_corrupt": broken_png,
        "image_too_large": _enc(Image.new("1", (12000, 12000)), "PNG"),  # 144 Mpx bomb
        "image_multiframe": gif.getvalue(),
        "image_too_small": _enc(base.resize((100, 100)), "PNG"),
        "image_bad_aspect": _enc(base.resize((600, 150)), "PNG"),
        "image_unsupported_format": _enc(base, "ICO"),
    }


def odd_but_good() -> dict[str, tuple[bytes, tuple[int, int]]]:
    base = _base()
    exif = base.getexif()
    exif[0x0112] = 6  # rotated 90 degrees: shown as 200 x 300
    grey16 = (np.asarray(base.convert("L")).astype(np.uint16)) * 257
    return {
        "cmyk": (_enc(base.convert("CMYK"), "JPEG"), (300, 200)),
        "palette": (_enc(base.convert("P"), "PNG"), (300, 200)),
        "grey_alpha": (_enc(base.convert("LA"), "PNG"), (300, 200)),
        "rgba": (_enc(base.convert("RGBA"), "PNG"), (300, 200)),
        "grey16": (_enc(Image.fromarray(grey16), "PNG"), (300, 200)),
        "exif_rotated": (_enc(base, "JPEG", exif=exif), (200, 300)),
    }


@pytest.mark.parametrize("reason", sorted(bad_fixtures()))
def test_each_bad_image_has_its_reason(reason):
    data = bad_fixtures()[reason]
    with pytest.raises(RecordError) as exc:
        if reason == "image_empty":
            load_images(make_draft(image_bytes=data), LIMITS)
        else:
            inspect_image(data, "fixture", LIMITS)
    assert exc.value.reason == reason


def test_animated_webp_is_multiframe():
    base = _base()
    buf = io.BytesIO()
    base.save(buf, "WEBP", save_all=True, append_images=[base.rotate(90)])
    with pytest.raises(RecordError) as exc:
        inspect_image(buf.getvalue(), "anim.webp", LIMITS)
    assert exc.value.reason == "image_multiframe"


@pytest.mark.parametrize("name", sorted(odd_but_good()))
def test_odd_modes_and_orientation_are_normalised(name):
    data, size = odd_but_good()[name]
    info = inspect_image(data, name, LIMITS)
    assert (info.width, info.height) == size
    reference = imagehash.phash(_base())
    if name == "exif_rotated":
        reference = imagehash.phash(_base().rotate(-90, expand=True))
    # the same picture in another mode hashes like the RGB original (16-bit is rescaled,
    # not clipped to white, so it stays close)
    assert imagehash.hex_to_hash(info.phash) - reference <= 4, name


def test_phash_matches_imagehash_on_full_decode():
    data = make_image("phash", 640, 480)
    info = inspect_image(data, "x", ImageLimits.defaults(draft_decode=False))
    assert info.phash == str(imagehash.phash(Image.open(io.BytesIO(data)).convert("RGB")))


def test_gates_are_skipped_for_exempt_sources_but_decoding_is_not():
    small = bad_fixtures()["image_too_small"]
    assert inspect_image(small, "x", ImageLimits.defaults(check_size=False)).width == 100
    truncated = bad_fixtures()["image_truncated"]
    with pytest.raises(RecordError):
        inspect_image(truncated, "x", ImageLimits.defaults(check_size=False))


def test_image_limits_are_the_images_block_plus_what_an_image_check_derives(tmp_path):
    images = ImagesConfig.from_block(
        {"min_side": 50, "max_aspect": 3.0, "exempt_sources": ["vist"], "draft_decode": False}
    )
    limits = ImageLimits.from_config(images, LimitsConfig.from_block({"max_image_bytes": 4096}))
    assert isinstance(limits, ImagesConfig)
    assert {f.name: getattr(limits, f.name) for f in fields(ImagesConfig)} == asdict(images)
    assert (limits.check_size, limits.max_bytes) == (True, 4096)
    assert limits.exempt() == replace(limits, check_size=False)
    # the read cap is the limits block's: a file over 4096 bytes is refused before decoding
    path = tmp_path / "big.jpg"
    path.write_bytes(make_image("big", 1200, 900))
    assert path.stat().st_size > 4096
    draft = make_draft()
    draft["images"] = [{"ref": draft["images"][0]["ref"], "uri": str(path), "root": str(tmp_path)}]
    with pytest.raises(RecordError) as caught:
        load_images(draft, limits)
    assert caught.value.reason == "image_file_too_large"


def test_load_images_stage_dead_letters_every_kind_and_reconciles(tmp_path):
    bad = bad_fixtures()
    good = [make_draft(image_bytes=make_image(f"good{i}", 300, 200)) for i in range(3)]
    for i, d in enumerate(good):
        d["id"] = f"MSR_remi_test_good{i}"
    drafts = list(good)
    for reason, data in sorted(bad.items()):
        d = make_draft(image_bytes=data)
        d["provenance"] = dict(d["provenance"], source="vist", source_id=reason)
        drafts.append(d)
    missing = make_draft()
    missing["images"][0].update(bytes=None, uri=str(tmp_path / "gone.jpg"))
    missing["provenance"] = dict(missing["provenance"], source="vist", source_id="image_missing")
    drafts.append(missing)
    images = ImagesConfig.from_block({"max_pixels": 50_000_000, "exempt_sources": []})
    with TestPipeline() as p:
        out = p | beam.Create(drafts) | LoadImages(images=images)
        assert_that(out.records | beam.Map(lambda r: r["id"]), equal_to([d["id"] for d in good]))
        reasons = out[DEAD] | beam.Map(lambda d: (d["source_id"], d["reason"], d["unit"]))
        expected = [(r, r, "record") for r in [*bad, "image_missing"]]
        assert_that(reasons, equal_to(expected), label="Reasons")
    assert len(good) + len(expected) == len(drafts)  # read = written + dropped


def test_drop_segment_keeps_records_that_stay_valid():
    ok = make_image("ok", 300, 200)
    tiny = bad_fixtures()["image_too_small"]
    draft = make_draft(image_bytes=ok)
    ref = "@9"
    draft["images"].append({"ref": ref, "uri": "mem://tiny.png", "bytes": tiny, "license": None})
    draft["answer"] = [{"text": "42", "image": ref}]
    with TestPipeline() as p:
        out = p | beam.Create([draft]) | LoadImages(images=DROP_SEGMENT_NOT_EXEMPT)
        assert_that(
            out.records | beam.Map(lambda r: (len(r["images"]), r["answer"])),
            equal_to([(1, [{"text": "42", "image": None}])]),
        )
        assert_that(
            out[DEAD] | beam.Map(lambda d: (d["reason"], d["unit"])),
            equal_to([("image_too_small", "image")]),
            label="Dead",
        )


def test_drop_segment_still_drops_a_record_whose_question_loses_its_image():
    draft = make_draft(image_bytes=bad_fixtures()["image_too_small"])
    with TestPipeline() as p:
        out = p | beam.Create([draft]) | LoadImages(images=DROP_SEGMENT_NOT_EXEMPT)
        assert_that(out.records, equal_to([]))
        assert_that(
            out[DEAD] | beam.Map(lambda d: (d["reason"], d["unit"])),
            equal_to([("image_too_small", "record")]),
            label="Dead",
        )


def test_load_images_exempts_only_the_listed_sources_from_the_size_gates(tmp_path):
    """``exempt_sources`` maps a record's source to the gate-free limits: the same small
    image passes for a listed source (and lands in the store) and fails for another."""
    small = bad_fixtures()["image_too_small"]
    exempt = make_draft(image_bytes=small)  # provenance source: remi
    gated = make_draft(image_bytes=small, id="MSR_vist_test_8")
    gated["provenance"] = dict(gated["provenance"], source="vist", source_id="8")
    store = ImageStore(str(tmp_path / "build"))
    with TestPipeline() as p:
        out = (
            p
            | beam.Create([exempt, gated])
            | LoadImages(images=ImagesConfig.from_block({"exempt_sources": ["remi"]}), store=store)
        )
        assert_that(out.records | beam.Map(lambda r: r["id"]), equal_to([exempt["id"]]))
        assert_that(
            out[DEAD] | beam.Map(lambda d: (d["source"], d["reason"])),
            equal_to([("vist", "image_too_small")]),
            label="Dead",
        )
    assert len(store.refs()) == 1
