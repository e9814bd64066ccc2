"""A release names no machine (issue 22, item 7): images by the address their source
publishes, files relative to their source's root, the CLIP checkpoint by name and sha256, and
a contact only when the build config gives one. Everything goes through the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.publish.cli import main as publish_main
from tests.conftest import REPO

SAMPLE = REPO / "sample"
# where each sample source's records name their files from (its configured paths' folders)
ROOTS = {
    "coco": [SAMPLE / "coco"],
    "mathvista": [SAMPLE / "mathvista"],
    "remi": [SAMPLE / "remi"],
    "vist": [SAMPLE / "vist" / "sis", SAMPLE / "vist" / "images"],
    "wikihow": [SAMPLE / "wikihow", SAMPLE / "wikihow" / "wiki_images"],
}


def _release_rows(release: Path) -> list[dict]:
    columns = ["id", "images", "provenance"]
    return [
        r
        for p in sorted(release.glob("data/*.parquet"))
        for r in pq.read_table(p, columns=columns).to_pylist()
    ]


def _published_urls() -> dict[str, dict[str, str]]:
    """What the sample's sources publish for their images: COCO's coco_url by file name,
    wikiHow's img by step id, VIST's url_o by photo id."""
    coco = json.loads((SAMPLE / "coco/annotations/captions_val2017.json").read_text())
    wikihow = {}
    for line in (SAMPLE / "wikihow/WikihowText_data.json").read_text().splitlines():
        if line.strip():
            for m in json.loads(line)["methods"]:
                wikihow.update({s["step_id"]: s["img"] for s in m["steps"] if s.get("img")})
    vist = {}
    for f in (SAMPLE / "vist/sis").glob("*.json"):
        vist.update(
            {i["id"]: i["url_o"] for i in json.loads(f.read_text())["images"] if i.get("url_o")}
        )
    return {
        "coco": {i["file_name"]: i["coco_url"] for i in coco["images"]},
        "wikihow": wikihow,
        "vist": vist,
    }


def _exists_under_root(source: str, name: str) -> bool:
    file = name.split("#", 1)[0]
    return any((root / file).is_file() for root in ROOTS[source])


def test_source_uri_is_the_published_url_or_a_path_under_the_source_root(release):
    urls = _published_urls()
    seen = {s: 0 for s in ROOTS}
    for row in _release_rows(release):
        source = row["provenance"]["source"]
        source_file = row["provenance"]["source_file"]
        assert not os.path.isabs(source_file) and ".." not in source_file.split("/"), row["id"]
        assert _exists_under_root(source, source_file), (row["id"], source_file)
        for im in row["images"]:
            uri = im["source_uri"]
            seen[source] += 1
            if source == "coco":  # COCO publishes every image's coco_url
                assert uri in urls["coco"].values(), uri
            elif source == "wikihow":  # VGSI publishes each step's wikiHow image URL
                assert uri in urls["wikihow"].values(), uri
            elif source == "vist" and uri.startswith("https://"):
                assert uri in urls["vist"].values(), uri  # Flickr url_o where the SIS gives it
            else:  # no published address: the file relative to the source's root
                assert "://" not in uri and not os.path.isabs(uri), uri
                assert ".." not in uri.split("#", 1)[0].split("/"), uri
                assert _exists_under_root(source, uri), (row["id"], uri)
                if source == "remi":
                    assert "#row=" in uri  # the image inside the Parquet file
    assert all(seen.values()), seen  # every sample source has images in the release


def test_manifest_names_source_files_relative_to_their_source(release):
    manifest = json.loads((release / "manifest.json").read_text())
    entries = manifest["source_files"]
    assert entries and all(e["status"] == "ok" for e in entries)
    for e in entries:
        assert _exists_under_root(e["source"], e["path"]), e
        root = next(r for r in ROOTS[e["source"]] if (r / e["path"]).is_file())
        assert hashlib.sha256((root / e["path"]).read_bytes()).hexdigest() == e["sha256"]


def _machine_paths(*extra: Path) -> set[bytes]:
    """Absolute paths of this machine that a release must not hold: the checkout, the
    temporary folders, the home folder and the working folder (each also resolved)."""
    paths = {REPO, Path(tempfile.gettempdir()), Path.home(), Path.cwd(), *extra}
    paths |= {p.resolve() for p in paths}
    # "/" or a one-level folder such as /tmp alone would match any text: only deeper ones,
    # plus the temporary folder followed by a separator
    out = {os.fsencode(str(p)) for p in paths if len(p.parts) > 2}
    out |= {os.fsencode(str(p)) + b"/" for p in paths if len(p.parts) == 2}
    return out


def test_no_machine_path_in_any_file_of_the_release(release, sample_build, tmp_path_factory):
    """Every file, text or binary (Parquet bytes, card, stats, report, MMIE export, images):
    none holds a path of the machine that built and published it."""
    needles = _machine_paths(sample_build, release, tmp_path_factory.getbasetemp())
    files = [p for p in sorted(release.rglob("*")) if p.is_file()]
    assert len(files) > 100 and any(p.suffix == ".parquet" for p in files)
    found = [
        f"{p.relative_to(release)}: {n.decode()}"
        for p in files
        for n in needles
        if n in p.read_bytes()
    ]
    assert found == []


def test_card_names_the_clip_checkpoint_by_name_and_sha256(release, tiny_clip_checkpoint):
    card = (release / "README.md").read_text()
    digest = hashlib.sha256(Path(tiny_clip_checkpoint).read_bytes()).hexdigest()
    assert f'"checkpoint": "local checkpoint mmloom-tiny-clip.safetensors, sha256 {digest}"' in card
    assert "out/models" not in card


def test_card_without_contact_names_none_and_says_how_to_set_it(release):
    card = (release / "README.md").read_text()
    contact = card.split("## Dataset Card Contact", 1)[1]
    assert "has no `contact` key" in contact and "@" not in contact
    assert "this release names none: its build config had no `contact`" in card


@pytest.mark.slow
def test_contact_from_the_config_reaches_the_card(tmp_path, capsys):
    (tmp_path / "remi").mkdir()
    shutil.copy(SAMPLE / "remi" / "test.parquet", tmp_path / "remi" / "test.parquet")
    config = tmp_path / "cfg.yaml"
    config.write_text(
        "version: 1\nname: contact\ncontact: datasets@example.org\n"
        "sources:\n  remi:\n    parquet: remi/*.parquet\n",
        encoding="utf-8",
    )
    out, release = tmp_path / "build", tmp_path / "release"
    argv = ["build", "--config", str(config), "--output", str(out), "--no-clip"]
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads((out / "stats.json").read_text())["contact"] == "datasets@example.org"
    argv = ["--build", str(out), "--output", str(release), "--version", "1.0.0"]
    assert publish_main(argv) == 0, capsys.readouterr().err
    card = (release / "README.md").read_text()
    section = card.split("## Dataset Card Contact", 1)[1]
    assert section.strip().startswith("datasets@example.org: questions about this release")
    assert "To ask for an item's removal, write to datasets@example.org with its `id`" in card


def test_contact_must_be_a_string(tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text("version: 1\ncontact: 7\nsources:\n  remi:\n    parquet: x.parquet\n")
    assert main(["build", "--config", str(config), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "contact" in err and "Traceback" not in err
