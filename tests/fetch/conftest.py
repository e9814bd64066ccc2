"""Fixtures of the fetch tests: loopback servers, official-format archives made from sample/,
and a runner for ``mmloom fetch`` in a subprocess (huggingface_hub reads HF_ENDPOINT when it
is imported, so the hub path needs a fresh interpreter)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fetch.servers import FileServer, HubServer

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample"

COCO_ANN = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
COCO_VAL = "http://images.cocodataset.org/zips/val2017.zip"
VIST_SIS = "https://visionandlanguage.net/VIST/json_files/story-in-sequence/SIS-with-labels.tar.gz"
VIST_DII = (
    "https://visionandlanguage.net/VIST/json_files/description-in-isolation/DII-with-labels.tar.gz"
)
MV_GITHUB = "https://raw.githubusercontent.com/lupantech/MathVista"
MV_TESTMINI = f"{MV_GITHUB}/452b0f83e0079029fb48d1d1b606d3954d812db1/data/testmini.json"
MV_QUERY = f"{MV_GITHUB}/eb2f989ad96af3c6b30e8e0321f5e9f8ed6bb53d/data/query.json"
MV_PARQUET = "testmini-00000-of-00001-725687bf7a18d64b.parquet"


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_gz_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def folder(path: Path, prefix: str) -> dict[str, bytes]:
    """Every file under ``path`` as ``prefix/<relative path>``."""
    return {
        f"{prefix}/{p.relative_to(path).as_posix()}": p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@dataclass
class Published:
    """Small archives in each source's official format and layout, made from sample/."""

    http: dict[str, bytes] = field(default_factory=dict)  # official URL -> bytes
    hub: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, path) -> bytes
    manual: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (source, file) -> bytes

    def sha(self, data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()


def make_published() -> Published:
    pub = Published()
    coco = SAMPLE / "coco"
    pub.http[COCO_ANN] = zip_bytes(
        {
            **folder(coco / "annotations", "annotations"),
            # the real zip also holds the train files and keypoints; fetch must skip them
            "annotations/person_keypoints_val2017.json": b"{}",
            "annotations/captions_train2017.json": b"{}",
        }
    )
    pub.http[COCO_VAL] = zip_bytes(folder(coco / "val2017", "val2017"))
    sis = (SAMPLE / "vist" / "sis" / "test.story-in-sequence.json").read_bytes()
    empty = json.dumps({"albums": [], "images": [], "annotations": []}).encode()
    pub.http[VIST_SIS] = tar_gz_bytes(
        {"sis/test.story-in-sequence.json": sis, "sis/train.story-in-sequence.json": empty}
    )
    pub.http[VIST_DII] = tar_gz_bytes(
        {
            "dii/test.description-in-isolation.json": empty,
            "dii/val.description-in-isolation.json": empty,
        }
    )
    pub.manual[("vist", "test_images.tar.gz")] = tar_gz_bytes(
        folder(SAMPLE / "vist" / "images" / "test", "test")
    )
    mv = SAMPLE / "mathvista"
    pub.http[MV_TESTMINI] = (mv / "testmini.json").read_bytes()
    pub.http[MV_QUERY] = (mv / "query.json").read_bytes()
    # images.zip holds images/<pid>.jpg for all 6,141 problems; one extra the build must skip
    pub.hub[("AI4Math/MathVista", "images.zip")] = zip_bytes(
        {**folder(mv / "images", "images"), "images/9999.jpg": b"not needed"}
    )
    for split in ("test", "train"):
        pub.hub[("mehrankazemi/ReMI", f"{split}.parquet")] = (
            SAMPLE / "remi" / f"{split}.parquet"
        ).read_bytes()
    wh = SAMPLE / "wikihow"
    pub.manual[("wikihow", "WikihowText_data.json")] = (wh / "WikihowText_data.json").read_bytes()
    pub.manual[("wikihow", "wiki_images.zip")] = zip_bytes(
        folder(wh / "wiki_images", "wiki_images")
    )
    return pub


@pytest.fixture(scope="session")
def published() -> Published:
    return make_published()


@pytest.fixture
def files_server():
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def hub_server(files_server):
    server = HubServer(files_server)
    yield server
    server.close()


@pytest.fixture
def serve(files_server, hub_server, published):
    """Both servers, loaded with every published file."""
    for url, data in published.http.items():
        files_server.put(url, data)
    for (repo, path), data in published.hub.items():
        hub_server.put(repo, path, data)
    return files_server, hub_server


def checksums_dir(tmp: Path, published: Published, known: bool = True) -> Path:
    """A ``--checksums-dir`` whose rows know the test archives' sha256 (or not)."""
    rows: dict[str, list[str]] = {}

    def add(source: str, url: str, name: str, data: bytes) -> None:
        size, sha = (str(len(data)), published.sha(data)) if known else ("-", "-")
        rows.setdefault(source, []).append("\t".join((url, size, sha, name)))

    add("coco", COCO_ANN, "annotations_trainval2017.zip", published.http[COCO_ANN])
    add("coco", COCO_VAL, "val2017.zip", published.http[COCO_VAL])
    add("vist", VIST_SIS, "SIS-with-labels.tar.gz", published.http[VIST_SIS])
    add("vist", VIST_DII, "DII-with-labels.tar.gz", published.http[VIST_DII])
    out = tmp / "checksums"
    for source, lines in rows.items():
        (out / source).mkdir(parents=True, exist_ok=True)
        (out / source / "checksums.tsv").write_text("\n".join(lines) + "\n")
    for source in ("mathvista", "remi", "wikihow"):
        (out / source).mkdir(parents=True, exist_ok=True)
        (out / source / "checksums.tsv").write_text("")
    return out


def put_manual(manual: Path, published: Published, *sources: str) -> None:
    for (source, name), data in published.manual.items():
        if source in sources:
            (manual / source).mkdir(parents=True, exist_ok=True)
            (manual / source / name).write_bytes(data)


def fetch_in_process(files: FileServer, source: str, to: Path, sums: Path, *extra: str) -> int:
    """``mmloom fetch SOURCE`` in this process (HTTP and hand-downloaded files only: the hub
    needs a fresh interpreter)."""
    from pipelines.cli import main

    argv = ["fetch", source, "--to", str(to), "--checksums-dir", str(sums)]
    return main([*argv, "--mirror", files.url, "--no-progress", "--backoff", "0.01", *extra])


def fetch_coco(files: FileServer, to: Path, sums: Path, *extra: str) -> int:
    return fetch_in_process(files, "coco", to, sums, *extra)


def gets(files: FileServer, url: str) -> list:
    return files.requests("GET", contains=files.path_of(url))


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def fetch_env(files: FileServer, hub: HubServer | None, tmp: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MMLOOM_FETCH"))}
    env.update(
        PYTHONPATH=str(REPO),
        HF_HOME=str(tmp / "hf-home"),
        MMLOOM_FETCH_MIRROR=files.url,
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    env.update(extra)
    return env


def fetch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "fetch", "--no-progress", *args]


def run_fetch(env: dict, *args: str, timeout: float = 120) -> Result:
    proc = subprocess.run(
        fetch_cmd(*args), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
