"""Reading a build: its records, stats, dead letters (the image store is ``schemas.store``).

A build folder::

    records/records-SSSSS-of-NNNNN.parquet   one row per record, no image bytes
    images/<sha256>.<ext>                    the image store (schemas.store), written once
    dead_letters/dead_letters-*.jsonl        one line per rejected input
    stats.json                               counts per source and stage
    _BUILD.json                              the completion manifest, written last

A folder is a build only when ``_BUILD.json`` is there and the files match it: the manifest
lists every record shard (rows from the Parquet footer, bytes, sha256), every dead-letter
file and ``stats.json``, and is written after all of them. :func:`require_complete` checks a
folder against it, the quick way (no hashing); ``mmloom show``, ``publish`` and ``annotate
push`` refuse anything else. ``mmloom verify`` (:mod:`schemas.verify`) also hashes every file
and checks the images the records use.

Readers stream: :func:`read_records` yields one record at a time, reading one row group
at a time, so nothing holds a whole build in memory. This module is the bottom layer: it
imports no Beam (:mod:`schemas.filesystems` reads a local build with ``os`` and imports Beam's
filesystems only for a URI), so ``mmloom show``, ``verify``, ``publish`` and ``annotate`` stay
light. Paths may be local or any Beam filesystem URI (``gs://...``).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow.parquet as pq

from schemas import output
from schemas.errors import MmloomError
from schemas.filesystems import FileSystems
from schemas.fs import sha256_size
from schemas.parquet import from_row

RECORDS_DIR = "records"
DEAD_LETTERS_DIR = "dead_letters"
STATS_FILE = "stats.json"
MANIFEST_FILE = "_BUILD.json"
MANIFEST_FORMAT = "mmloom-build"
MANIFEST_VERSION = 1
# everything a build writes at the top of its folder; anything else is not ours
BUILD_ENTRIES = (RECORDS_DIR, DEAD_LETTERS_DIR, STATS_FILE, "images", MANIFEST_FILE)

_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.[a-z]+$")


class IncompleteBuildError(MmloomError):
    """A folder that is not a complete build (no valid manifest, or files that differ)."""


def _glob(build_dir: str, *parts: str) -> list[str]:
    try:
        result = FileSystems.match([FileSystems.join(build_dir, *parts)])[0]
    except Exception:  # a missing folder matches nothing
        return []
    return sorted(m.path for m in result.metadata_list)


def _rel(build_dir: str, path: str) -> str:
    root = build_dir.rstrip("/")
    return path[len(root) :].lstrip("/\\").replace("\\", "/")


def _size(path: str) -> int:
    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes


def parquet_rows(path: str) -> int:
    """Rows of a Parquet file, from its footer (the data is not read)."""
    if "://" not in path:
        return pq.ParquetFile(path).metadata.num_rows
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return pq.ParquetFile(f).metadata.num_rows


def count_lines(path: str) -> int:
    """Non-blank lines of a JSON Lines file."""
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return sum(1 for line in f.read().decode("utf-8").splitlines() if line.strip())


def read_manifest(build_dir: str) -> dict[str, Any] | None:
    """The build's ``_BUILD.json``, or None when the folder has none.

    Raises:
        IncompleteBuildError: the file is there but is not a manifest this version reads.
    """
    path = FileSystems.join(build_dir, MANIFEST_FILE)
    if not FileSystems.exists(path):
        return None
    try:
        with FileSystems.open(path, compression_type="uncompressed") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IncompleteBuildError(
            f"{path} is not valid JSON ({exc}); {_REBUILD.format(dir=build_dir)}"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise IncompleteBuildError(
            f"{path} is not an mmloom build manifest; {_REBUILD.format(dir=build_dir)}"
        )
    if manifest.get("format_version") != MANIFEST_VERSION:
        raise IncompleteBuildError(
            f"{path} has manifest version {manifest.get('format_version')!r}; this mmloom reads "
            f"version {MANIFEST_VERSION}. {_REBUILD.format(dir=build_dir)}"
        )
    return manifest


_REBUILD = "rebuild it with `mmloom build --config CONFIG --output {dir} --overwrite`"


def _files_entry(build_dir: str, paths: list[str], count) -> dict[str, Any]:
    files = []
    for path in paths:
        digest, size = sha256_size(path)
        files.append({"path": _rel(build_dir, path), "rows": count(path), "bytes": size,
                      "sha256": digest})  # fmt: skip
    return {"files": files, "rows": sum(f["rows"] for f in files)}


def _check_shard_set(paths: list[str], what: str) -> None:
    """Sharded names ``-SSSSS-of-NNNNN``: every shard of the set must be there."""
    numbered = [_SHARD.search(posixpath.basename(p)) for p in paths]
    if not numbered or not all(numbered):
        return
    totals = {int(m.group(2)) for m in numbered}
    seen = {int(m.group(1)) for m in numbered}
    if len(totals) != 1 or seen != set(range(totals.pop())):
        raise IncompleteBuildError(
            f"the {what} shards are not one complete set: {[posixpath.basename(p) for p in paths]}"
        )


def write_manifest(
    build_dir: str,
    header: dict[str, Any] | None = None,
    images_referenced: int | None = None,
) -> dict[str, Any]:
    """Write ``_BUILD.json`` for the files now in ``build_dir``; call it last.

    The build's final stage calls it once records, dead letters and stats are written (so the
    job writes its own marker, wherever ``--output`` points); tests and tools that write a
    build by hand call it too. It refuses (raises) when a shard set is incomplete or the
    records disagree with ``stats.json``'s ``written`` total, so no manifest is written then.

    Args:
        header: run facts copied in (``mmloom_version``, ``build``, ``config_sha256``); taken
            from stats.json when not given.
        images_referenced: distinct images the records use; counted from the records when
            not given.
    Returns:
        the manifest written.
    """
    records = _glob(build_dir, RECORDS_DIR, "*.parquet")
    dead = _glob(build_dir, DEAD_LETTERS_DIR, "*.jsonl")
    if not records:
        raise IncompleteBuildError(f"{build_dir} holds no records/*.parquet to list")
    _check_shard_set(records, "records")
    _check_shard_set(dead, "dead-letter")
    stats_path = FileSystems.join(build_dir, STATS_FILE)
    if not FileSystems.exists(stats_path):
        raise IncompleteBuildError(f"{build_dir} holds no {STATS_FILE} to list")
    stats = read_stats(build_dir)
    stats_sha, stats_size = sha256_size(stats_path)
    records_entry = _files_entry(build_dir, records, parquet_rows)
    written = stats.get("totals", {}).get("written")
    if written is not None and written != records_entry["rows"]:
        raise IncompleteBuildError(
            f"{build_dir}: the record shards hold {records_entry['rows']} rows but stats.json "
            f"counts {written} written"
        )
    if images_referenced is None:
        images_referenced = len(
            {im["path"] for path in records for row in iter_parquet_rows(path, ["images"])
             for im in row["images"] or []}
        )  # fmt: skip
    header = header or {}
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "mmloom_version": header.get("mmloom_version", stats.get("mmloom_version")),
        "build": header.get("build", stats.get("build")),
        "config_sha256": header.get("config_sha256", stats.get("config_sha256")),
        "records": records_entry,
        "dead_letters": _files_entry(build_dir, dead, count_lines),
        "stats": {
            "path": STATS_FILE,
            "bytes": stats_size,
            "sha256": stats_sha,
            "written": written,
            "reconciled": stats.get("reconciled"),
        },
        "images_referenced": images_referenced,
    }
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    path = FileSystems.join(build_dir, MANIFEST_FILE)
    if "://" in path:  # an object store shows an object only once it is complete
        with FileSystems.create(path, compression_type="uncompressed") as f:
            f.write(data)
    else:
        tmp = path + ".partial"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return manifest


def safe_relpath(rel: Any) -> bool:
    """Is ``rel`` (a path read from a manifest) a plain relative path inside the folder?
    Anything else (absolute, ``..``, backslashes, empty parts) is never opened."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def list_folder(folder: str) -> list[str]:
    """Names of every entry directly in ``folder`` (files and folders, hidden ones too);
    empty when it does not exist. On an object store a "folder" is a name prefix, so this
    lists every object below it: cheap for ``records/``, not for a build's top level."""
    if "://" not in folder:
        try:
            return sorted(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
    root = folder.rstrip("/") + "/"
    try:
        matched = FileSystems.match([root + "**"])[0].metadata_list
    except Exception:  # a missing prefix matches nothing
        return []
    return sorted({m.path[len(root) :].split("/", 1)[0] for m in matched} - {""})


def compare_file(
    rel: str,
    path: str,
    entry: dict[str, Any],
    count_rows: Callable[[str], int] | None = None,
    hash_it: bool = False,
) -> str | None:
    """One file against its manifest entry (``bytes``, ``rows``, ``sha256``): None when it
    matches, else one problem that starts with ``rel``.

    The size is always compared; rows when ``count_rows`` is given and the entry has rows;
    the sha256 only with ``hash_it`` and when size and rows agree (a file that differs in
    size needs no hashing to be known changed).
    """
    if not FileSystems.exists(path):
        return f"{rel}: missing"
    diffs = []
    size = _size(path)
    if size != entry.get("bytes"):
        diffs.append(f"{size} bytes (the manifest says {entry.get('bytes')})")
    if count_rows is not None and entry.get("rows") is not None:
        try:
            rows = count_rows(path)
        except (ValueError, OSError) as exc:
            if not _damaged(exc):  # the system's fault, not the file's
                raise
            diffs.append(f"unreadable ({str(exc).strip()[:200]})")
        else:
            if rows != entry["rows"]:
                diffs.append(f"{rows} rows (the manifest says {entry['rows']})")
    if not diffs and hash_it and sha256_size(path)[0] != entry.get("sha256"):
        diffs.append("same size, other bytes (its sha256 differs from the manifest's)")
    return f"{rel}: {', '.join(diffs)}" if diffs else None


def format_problems(problems: list[str], limit: int, sep: str = "; ") -> str:
    """The first ``limit`` problems joined by ``sep``, then how many more there are."""
    shown = sep.join(problems[:limit])
    if len(problems) > limit:
        shown += f"{sep}and {len(problems) - limit} more"
    return shown


def check_build(build_dir: str, verify_checksums: bool = False) -> tuple[dict | None, list[str]]:
    """Compare a folder with its manifest: ``(manifest, problems)``; no problems: complete.

    Cheap by default, no file is hashed but the small ``stats.json``: every listed record
    shard and dead-letter file exists with its size, record shards hold their rows (Parquet
    footer), ``stats.json`` has its sha256, and ``records/`` and ``dead_letters/`` hold
    nothing unlisted; a local folder's top level holds nothing but a build's entries
    (:data:`BUILD_ENTRIES`). ``verify_checksums`` also hashes every listed file, counts the
    dead letters' lines, and lists the top level of an object-store build too (listing it
    there lists every image). Images are checked by :func:`schemas.verify.verify_build`.
    Each problem starts with the path it is about.
    """
    if not FileSystems.exists(build_dir) and "://" not in build_dir:
        return None, [f"{build_dir} does not exist"]
    manifest = read_manifest(build_dir)
    if manifest is None:
        present = entries_present(build_dir)
        if present:
            return None, [
                f"no {MANIFEST_FILE}: the build that wrote {', '.join(present)} did not finish "
                "(it was killed, failed, or is still running)"
            ]
        return None, [f"no {MANIFEST_FILE} and no build files"]
    try:
        sections = {
            section: list(manifest[section]["files"]) for section in ("records", "dead_letters")
        }
        stats_entry = {"bytes": manifest["stats"]["bytes"], "sha256": manifest["stats"]["sha256"]}
        bad = [e for files in sections.values() for e in files if not safe_relpath(e["path"])]
    except (KeyError, TypeError) as exc:
        return None, [f"{MANIFEST_FILE}: not the manifest this mmloom writes (no {exc})"]
    if bad:
        return None, [f"{MANIFEST_FILE}: lists a path outside the build ({bad[0]['path']!r})"]
    problems: list[str] = []
    listed = set()
    lines = count_lines if verify_checksums else None
    counters = {"records": parquet_rows, "dead_letters": lines}
    for section, files in sections.items():
        for entry in files:
            listed.add(entry["path"])
            path = FileSystems.join(build_dir, *entry["path"].split("/"))
            problem = compare_file(entry["path"], path, entry, counters[section], verify_checksums)
            if problem:
                problems.append(problem)
    for folder in (RECORDS_DIR, DEAD_LETTERS_DIR):
        for name in list_folder(FileSystems.join(build_dir, folder)):
            if f"{folder}/{name}" not in listed:
                problems.append(f"{folder}/{name}: not in the manifest")
    stats_path = FileSystems.join(build_dir, STATS_FILE)
    problem = compare_file(STATS_FILE, stats_path, stats_entry, hash_it=True)
    if problem:
        problems.append(problem)
    if "://" not in build_dir or verify_checksums:
        for name in list_folder(build_dir):
            if name not in BUILD_ENTRIES and name != output.MARKER:  # a build written in place
                problems.append(f"{name}: not part of a build")
    return manifest, problems


def _has_build_files(build_dir: str) -> bool:
    return bool(entries_present(build_dir))


def entries_present(build_dir: str) -> list[str]:
    """Which of a build's top-level entries ``build_dir`` holds. On object stores a folder is
    only a name prefix, so folders are found by listing one object under them."""
    present = []
    for entry in BUILD_ENTRIES:
        path = FileSystems.join(build_dir, entry)
        if FileSystems.exists(path):
            present.append(entry)
        elif "://" in build_dir and "." not in entry:
            try:
                found = FileSystems.match([FileSystems.join(path, "*")], limits=[1])[0]
            except Exception:
                continue
            if found.metadata_list:
                present.append(entry)
    return present


def require_complete(build_dir: str, verify_checksums: bool = False) -> dict[str, Any]:
    """The manifest of a complete build; otherwise an error that says what is wrong and what
    to do (the first problems, and ``mmloom verify DIR`` for all of them).

    Raises:
        IncompleteBuildError: no manifest, an unreadable one, or files that do not match it.
    """
    manifest, problems = check_build(build_dir, verify_checksums)
    if manifest is None and problems and not _has_build_files(build_dir):
        raise IncompleteBuildError(
            f"{build_dir} holds no build ({problems[0]}); run `mmloom build --config CONFIG "
            f"--output {build_dir}` first"
        )
    if problems:
        details = f"run `mmloom verify {build_dir}` for every problem, and " if manifest else ""
        raise IncompleteBuildError(
            f"{build_dir} is not a complete build: {format_problems(problems, 5)}. Nothing was "
            f"read from it; {details}" + _REBUILD.format(dir=build_dir)
        )
    assert manifest is not None
    return manifest


def record_files(build_dir: str) -> list[str]:
    """The build's record shards: those its manifest lists, else (no manifest) every
    ``records/*.parquet`` found."""
    manifest = read_manifest(build_dir)
    if manifest is None:
        return _glob(build_dir, RECORDS_DIR, "*.parquet")
    return [
        FileSystems.join(build_dir, *e["path"].split("/")) for e in manifest["records"]["files"]
    ]


def read_stats(build_dir: str) -> dict[str, Any]:
    """The build's stats.json, or ``{}`` when it has none."""
    path = FileSystems.join(build_dir, STATS_FILE)
    if not FileSystems.exists(path):
        return {}
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return json.loads(f.read())


class DamagedFileError(MmloomError):
    """A file of a build or release that cannot be decoded (changed or corrupted on disk)."""


def _damaged(exc: BaseException) -> bool:
    """Is ``exc`` a decoding failure of a file's content (and not a fault of the system)?
    pyarrow raises ValueErrors (``ArrowInvalid``, bad UTF-8) and, for thrift it cannot
    deserialize, OSErrors without an errno; an OSError with one is the disk's or system's."""
    return isinstance(exc, ValueError) or (isinstance(exc, OSError) and exc.errno is None)


def iter_parquet_rows(path: str, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of one Parquet file, one row group at a time.

    Local files are opened by path; other filesystems through Beam's ``FileSystems``.
    Reads run without pyarrow's thread pool: threaded reads of a Python file object abort
    the process now and then under pyarrow 25 (``mmloom show`` exited 134 in 1-3 of 10 runs).

    Raises:
        DamagedFileError: the file cannot be decoded (a byte changed on disk; the quick
            checks of show and publish do not hash, so they let such a file through).
    """
    try:
        yield from _parquet_rows_of(path, columns)
    except (ValueError, OSError) as exc:
        if not _damaged(exc):
            raise
        raise DamagedFileError(
            f"{path} cannot be read ({str(exc).strip()[:200]}): the file is damaged; "
            "`mmloom verify` on its build or release lists every problem"
        ) from exc


def _parquet_rows_of(path: str, columns: list[str] | None) -> Iterator[dict[str, Any]]:
    if "://" not in path:
        pfile = pq.ParquetFile(path)
        try:
            for group in range(pfile.num_row_groups):
                table = pfile.read_row_group(group, columns=columns, use_threads=False)
                yield from table.to_pylist()
        finally:
            pfile.close()
        return
    with FileSystems.open(path, compression_type="uncompressed") as f:
        pfile = pq.ParquetFile(f)
        for group in range(pfile.num_row_groups):
            yield from pfile.read_row_group(group, columns=columns, use_threads=False).to_pylist()


def read_records(build_dir: str) -> Iterator[dict[str, Any]]:
    """Every record of a build as its JSON view, streamed file by file and row group by row
    group (shard order, not sorted). Images are references into the build's store:
    ``schemas.store.ImageStore(build_dir).get(image["path"])`` returns the bytes."""
    for path in record_files(build_dir):
        for row in iter_parquet_rows(path):
            yield from_row(row)


def read_dead_letters(build_dir: str) -> Iterator[dict[str, Any]]:
    pattern = FileSystems.join(build_dir, DEAD_LETTERS_DIR, "*.jsonl")
    for meta in sorted(FileSystems.match([pattern])[0].metadata_list, key=lambda m: m.path):
        with FileSystems.open(meta.path, compression_type="uncompressed") as f:
            for line in f.read().decode("utf-8").splitlines():
                if line.strip():
                    yield json.loads(line)


# ------------------------------------------------------------------------------ releases

RELEASE_DATA_DIR = "data"
RELEASE_MANIFEST = "manifest.json"
_RELEASE_JSON_COLUMNS = ("answer_value", "source_metadata")


def is_release(path: str) -> bool:
    """Is ``path`` a folder written by ``mmloom publish``: a ``manifest.json`` and no build
    entries (``records/``, ``_BUILD.json``)? Its data shards need not be there: a release
    that lost them is still one, and is refused by its checks (``schemas.verify``)."""
    return FileSystems.exists(FileSystems.join(path, RELEASE_MANIFEST)) and not any(
        FileSystems.exists(FileSystems.join(path, name)) for name in (RECORDS_DIR, MANIFEST_FILE)
    )


def read_release_manifest(path: str) -> dict[str, Any]:
    with FileSystems.open(
        FileSystems.join(path, RELEASE_MANIFEST), compression_type="uncompressed"
    ) as f:
        return json.loads(f.read())


def _release_view(row: dict[str, Any]) -> dict[str, Any]:
    """A release row as JSON: segment images by path (their bytes left out), JSON columns
    parsed."""
    out = dict(row)
    for key in ("question", "answer", "gt_answer"):
        out[key] = [
            {"text": s["text"], "image": None if s["image"] is None else s["image"]["path"]}
            for s in row[key] or []
        ]
    for key in _RELEASE_JSON_COLUMNS:
        out[key] = None if row.get(key) is None else json.loads(row[key])
    if out.get("instruction"):
        out["instruction"] = {
            **out["instruction"],
            "components": [
                {**c, "facts": None if c["facts"] is None else json.loads(c["facts"])}
                for c in out["instruction"]["components"]
            ],
        }
    return out


def read_release_records(path: str) -> Iterator[dict[str, Any]]:
    """Every record of a release, streamed shard by shard, row group by row group."""
    pattern = FileSystems.join(path, RELEASE_DATA_DIR, "*.parquet")
    for shard in sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list):
        for row in iter_parquet_rows(shard):
            yield _release_view(row)


RELEASE_DROPPED = "dropped.jsonl"


def read_release_dropped(path: str) -> Iterator[dict[str, Any]]:
    """The lines of a release's ``dropped.jsonl`` (``stage``, ``reason``, ``id``, ``detail``):
    every build record not published and every rejected annotation line, in file order."""
    with FileSystems.open(
        FileSystems.join(path, RELEASE_DROPPED), compression_type="uncompressed"
    ) as f:
        for line in f.read().decode("utf-8").splitlines():
            if line.strip():
                yield json.loads(line)


def read_release_image(path: str, image_path: str) -> bytes:
    """The bytes of one image of a release (``images/<sha256>.<ext>``), from its shards."""
    pattern = FileSystems.join(path, RELEASE_DATA_DIR, "*.parquet")
    for shard in sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list):
        for row in iter_parquet_rows(shard, columns=["question", "answer", "gt_answer"]):
            for key in ("question", "answer", "gt_answer"):
                for s in row[key] or []:
                    if s["image"] is not None and s["image"]["path"] == image_path:
                        return s["image"]["bytes"]
    raise FileNotFoundError(f"no image {image_path} in the release {path}")
