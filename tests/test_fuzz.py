"""Property-based fuzzing (Hypothesis): mutated real records through every reader and stage.

Issue 14, item 1: no single record or value can fail the job. Every example starts from the
bundled sample (``sample/<source>/``, real published formats), keeps a few units of it and
mutates them structurally: keys dropped, values replaced by other JSON types (None, 10**400,
1e308, NaN/Infinity, negative numbers, empty, very long, unicode, control-character and
markup strings, lone surrogates, nested lists and dicts, deep nesting), ids duplicated, files
truncated or garbled, images corrupted, replaced or removed. Then it checks three things:

* **no crash**: nothing escapes a stage's per-element code (a reader's ``read_file``, each
  DoFn's ``process``, the dead-letter writer); a source's ``restructure`` and the pure
  ``load_images`` raise only ``RecordError`` (the documented route to a dead letter);
* **no hang**: every example runs under a time limit (:func:`time_limit`);
* **counts reconcile**: every unit a reader sees ends as one item or one dead letter, and
  every element a stage takes ends as one output or one record dead letter; the end-to-end
  builds write a manifest and a ``stats.json`` with ``read = written + dropped``.

The example budget is fixed and derandomized (the same examples every run, no example
database), small enough for CI: the whole file runs in about a minute on two cores.
"""

from __future__ import annotations

import contextlib
import copy
import faulthandler
import json
import math
import os
import shutil
import signal
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from pipelines.config import DedupeConfig, ImagesConfig
from pipelines.dedupe import stages as dedupe
from pipelines.images import DROP_RECORD, DROP_SEGMENT, load_images
from pipelines.transforms.images import LoadImagesFn
from pipelines.transforms.io import ToRecordRow, dead_letter_json
from pipelines.transforms.validate import PickOneFn, ValidateRecordsFn
from schemas.deadletter import DEAD, UNIT_IMAGE, UNIT_RECORD
from schemas.errors import RecordError
from schemas.store import ImageStore
from sources import get_source
from sources.mathvista.reader import ReadMathVista

SAMPLE = Path(__file__).resolve().parent.parent / "sample"
SOURCES = ["coco", "mathvista", "remi", "vist", "wikihow"]

# the budget: examples per test (derandomized, so the same ones every run)
READER_EXAMPLES = 25  # per source
STAGE_EXAMPLES = 40
BUILD_EXAMPLES = 3
# a hang is an example that runs over this (a normal one takes well under a second)
EXAMPLE_SECONDS = 30
BUILD_SECONDS = 120

# FUZZ_DISCOVER=1: do not fail on ``unexpected_error`` dead letters (a bug caught by a stage's
# safety net), to look past them for crashes; the suite runs without it
DISCOVER = bool(os.environ.get("FUZZ_DISCOVER"))

FUZZ = settings(
    max_examples=READER_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    # no shrinking: a failure prints its mutations (note()), which is the reproducer, and
    # shrinking file-writing examples takes minutes
    phases=[Phase.explicit, Phase.generate],
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------------------------------------
# no hang
# ---------------------------------------------------------------------------------------------


class Hang(BaseException):
    """An example ran over its time limit. A BaseException, so that the ``except Exception``
    of the code under test cannot turn it into a dead letter."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail the example when it runs over ``seconds`` (SIGALRM raises :class:`Hang` in Python
    code; a hang inside C code that never returns to Python ends the process after
    3 x ``seconds`` with every thread's traceback). pytest-timeout's own alarm is restored."""

    def on_alarm(signum, frame):
        raise Hang(f"the example ran over {seconds} s")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_timer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(seconds * 3, exit=True)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, old_handler)
        if old_timer:
            left = old_timer - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


# ---------------------------------------------------------------------------------------------
# mutations
# ---------------------------------------------------------------------------------------------

# Raw JSON text put in place of a marker string after serialising: values ``json.dumps``
# cannot write (nesting deeper than its recursion limit, an integer literal longer than
# Python's 4300-digit parse limit, a float literal that overflows to Infinity).
RAW = {
    "__RAW_DEEP_LIST__": "[" * 5000 + "]" * 5000,
    "__RAW_DEEP_DICT__": '{"a":' * 3000 + "1" + "}" * 3000,
    "__RAW_HUGE_INT__": "9" * 5000,
    "__RAW_1E999__": "1e999",
}

WEIRD_SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    -(2**63) - 1,
    2**64,
    10**400,
    1e308,
    -1e308,
    5e-324,
    math.nan,
    math.inf,
    -math.inf,
    "",
    " ",
    "\x00",
    "\x1b[31mred\x07",
    "\ud800",  # a lone surrogate: valid JSON (an escape), not encodable as UTF-8
    "\u202eevil",
    "<img src=x onerror=alert(1)><b>",
    "../../../../etc/passwd",
    "/etc/passwd",
    "C:\\Windows",
    "gs://bucket/x.jpg",
    "%s%n{0}{{}}",
    "ñ日本語🙂\u0301",
    "x" * 20_000,
    "NaN",
    "-0",
    *RAW,
]

TAINTS = ["\ud800", "\x00", "\x1b[2J", "\u202e", "<script>", " " * 3, "\n\r\t", "🙂", "x" * 5000]

WEIRD = st.one_of(
    st.sampled_from(WEIRD_SCALARS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.sampled_from(WEIRD_SCALARS[:16]), max_size=3),
    st.dictionaries(st.text(max_size=4), st.sampled_from(WEIRD_SCALARS[:16]), max_size=2),
    st.just([[[[]]]]),
)

OPS = [
    "taint",
    "taint",
    "replace",
    "replace",
    "replace",
    "drop",
    "duplicate",
    "wrap",
    "sibling",
    "rename",
    "empty",
]


def pick_path(data: st.DataObject, doc: Any) -> list[Any]:
    """A random walk from the root: each step stops (one chance in four) or descends into
    one child; shallow nodes are thus the likeliest, deep ones still reachable."""
    path: list[Any] = []
    node = doc
    while isinstance(node, dict | list) and node and data.draw(st.integers(0, 3)):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = keys[data.draw(st.integers(0, len(keys) - 1))]
        path.append(key)
        node = node[key]
    return path


def _get(doc: Any, path: list[Any]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def mutate_json(data: st.DataObject, doc: Any, n_max: int = 3) -> tuple[Any, list[str]]:
    """``doc`` with 1..``n_max`` structural mutations, and their description."""
    doc = copy.deepcopy(doc)
    done = []
    for _ in range(data.draw(st.integers(1, n_max))):
        path = pick_path(data, doc)
        op = data.draw(st.sampled_from(OPS))
        if not path:  # the root: replace it (or leave it for the next mutation)
            if op == "replace":
                doc = data.draw(WEIRD)
                done.append(f"root = {_short(doc)}")
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        value = parent[key]
        if op == "taint" and isinstance(value, str):  # a string kept, with something odd in it
            parent[key] = value + data.draw(st.sampled_from(TAINTS))
        elif op in ("replace", "taint"):
            parent[key] = data.draw(WEIRD)
        elif op == "drop":
            del parent[key]
        elif op == "duplicate":  # a list element twice: duplicate ids, duplicate units
            if isinstance(parent, list):
                parent.insert(key, copy.deepcopy(value))
            else:
                parent[f"{key}"] = copy.deepcopy(value)
        elif op == "wrap":
            parent[key] = [value] if data.draw(st.booleans()) else {"value": value}
        elif op == "sibling":  # another element's value: right shape, wrong place
            keys = list(parent) if isinstance(parent, dict) else list(range(len(parent)))
            parent[key] = copy.deepcopy(parent[keys[data.draw(st.integers(0, len(keys) - 1))]])
        elif op == "rename" and isinstance(parent, dict):
            parent[f"{key}\u00a0"] = parent.pop(key)
        elif op == "empty":
            parent[key] = type(value)() if isinstance(value, str | list | dict) else None
        done.append(f"{op} {'/'.join(map(str, path))} -> {_short(_get_or(doc, path))}")
    return doc, done


def _get_or(doc: Any, path: list[Any]) -> Any:
    try:
        return _get(doc, path)
    except (KeyError, IndexError, TypeError):
        return "<gone>"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def dumps(doc: Any, data: st.DataObject) -> bytes:
    """``doc`` as a JSON file: Python's own writer (NaN/Infinity as Python writes them), raw
    markers replaced; sometimes non-ASCII written as is (lone surrogates then as invalid
    UTF-8 bytes)."""
    ascii_only = data.draw(st.booleans())
    text = json.dumps(doc, ensure_ascii=ascii_only)
    for marker, raw in RAW.items():
        text = text.replace(json.dumps(marker), raw)
    return text.encode("utf-8", "surrogatepass")


def mutate_bytes(data: st.DataObject, raw: bytes) -> tuple[bytes, str]:
    """A whole file damaged: truncated, garbled, emptied, or left alone."""
    op = data.draw(st.sampled_from(["none", "none", "none", "truncate", "garble", "empty", "bom"]))
    if op == "truncate" and raw:
        return raw[: data.draw(st.integers(0, len(raw) - 1))], op
    if op == "garble" and raw:
        at = data.draw(st.integers(0, len(raw) - 1))
        junk = data.draw(st.sampled_from([b"\xff\xfe", b"\x00", b"}", b"\n", b'"', b"\xc3"]))
        return raw[:at] + junk + raw[at:], op
    if op == "empty":
        return b"", op
    if op == "bom":
        return b"\xef\xbb\xbf" + raw, op
    return raw, op


def bad_image(data: st.DataObject, good: bytes) -> bytes | None:
    """An image file's damaged bytes (None: remove the file; a folder: see callers)."""
    bomb = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02\x00\x00\x00"
    )
    choices = [
        None,
        b"",
        good[: max(1, len(good) // 3)],
        good[:20],
        b"not an image at all",
        bomb,  # a 100000 x 100000 PNG header: the decompression-bomb guard
        _png(1, 1),
        _png(400, 2),
        _gif(),
        good[:100] + bytes(200) + good[300:],
    ]
    return data.draw(st.sampled_from(choices))


@cache
def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), "green").save(buf, "PNG")
    return buf.getvalue()


@cache
def _gif() -> bytes:
    """A two-frame (animated) GIF."""
    import io

    from PIL import Image

    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def link_tree(src: Path, dst: Path) -> None:
    """``dst`` mirrors ``src``: folders made, files symlinked (cheap; damaged ones replaced)."""
    for root, _dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            (dst / rel / name).symlink_to(Path(root) / name)


def damage_images(data: st.DataObject, folder: Path) -> list[str]:
    """Damage 0..2 image files under ``folder`` (a linked tree)."""
    files = sorted(p for p in folder.rglob("*") if p.is_symlink() or p.is_file())
    files = [p for p in files if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    done = []
    for _ in range(data.draw(st.integers(0, 2))):
        if not files:
            break
        victim = files[data.draw(st.integers(0, len(files) - 1))]
        if victim.is_dir() or not (victim.exists() or victim.is_symlink()):
            continue
        good = victim.read_bytes()
        victim.unlink()
        if data.draw(st.integers(0, 9)) == 0:
            victim.mkdir()  # a folder where the image should be
            done.append(f"{victim.name}: a folder")
            continue
        replacement = bad_image(data, good)
        if replacement is not None:
            victim.write_bytes(replacement)
        done.append(f"{victim.name}: {'removed' if replacement is None else len(replacement)}")
    return done


# ---------------------------------------------------------------------------------------------
# the sources, a few units at a time, in their real layouts
# ---------------------------------------------------------------------------------------------


@cache
def _json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def subset(data: st.DataObject, keys: list[Any], most: int = 3) -> list[Any]:
    n = data.draw(st.integers(1, min(most, len(keys))))
    start = data.draw(st.integers(0, len(keys) - n))
    return keys[start : start + n]


def layout_mathvista(data: st.DataObject, tmp: Path) -> tuple[dict[str, Any], list[str]]:
    root = tmp / "mathvista"
    problems = _json(SAMPLE / "mathvista" / "testmini.json")
    queries = _json(SAMPLE / "mathvista" / "query.json")
    pids = subset(data, sorted(problems, key=int))
    doc = {pid: problems[pid] for pid in pids}
    doc, log = mutate_json(data, doc)
    link_tree(SAMPLE / "mathvista" / "images", root / "images")
    raw, op = mutate_bytes(data, dumps(doc, data))
    (root / "testmini.json").write_bytes(raw)
    query = {pid: queries[pid] for pid in pids if pid in queries}
    if data.draw(st.integers(0, 4)) == 0:
        query, qlog = mutate_json(data, query, 1)
        log += [f"query.json: {m}" for m in qlog]
    (root / "query.json").write_bytes(dumps(query, data))
    log += [op, *damage_images(data, root / "images")]
    return {"root": str(root), "splits": ["testmini"]}, log


def layout_vist(data: st.DataObject, tmp: Path) -> tuple[dict[str, Any], list[str]]:
    root = tmp / "vist"
    sis = _json(SAMPLE / "vist" / "sis" / "test.story-in-sequence.json")
    stories = sorted({a[0]["story_id"] for a in sis["annotations"]})
    chosen = set(subset(data, stories))
    annotations = [a for a in sis["annotations"] if a[0]["story_id"] in chosen]
    albums = {a[0]["album_id"] for a in annotations}
    doc = {
        "albums": [a for a in sis["albums"] if a["id"] in albums],
        "images": [i for i in sis["images"] if i["album_id"] in albums],
        "annotations": annotations,
    }
    doc, log = mutate_json(data, doc)
    (root / "sis").mkdir(parents=True)
    raw, op = mutate_bytes(data, dumps(doc, data))
    (root / "sis" / "test.story-in-sequence.json").write_bytes(raw)
    link_tree(SAMPLE / "vist" / "images", root / "images")
    log += [op, *damage_images(data, root / "images")]
    options = {
        "sis": str(root / "sis" / "*.story-in-sequence.json"),
        "images": str(root / "images"),
        "text_field": "text",
    }
    return options, log


def layout_wikihow(data: st.DataObject, tmp: Path) -> tuple[dict[str, Any], list[str]]:
    root = tmp / "wikihow"
    lines = (SAMPLE / "wikihow" / "WikihowText_data.json").read_text("utf-8").splitlines()
    chosen = [json.loads(line) for line in subset(data, [x for x in lines if x.strip()])]
    chosen, log = mutate_json(data, chosen)
    chosen = chosen if isinstance(chosen, list) else [chosen]
    raw = b"\n".join(dumps(article, data) for article in chosen) + b"\n"
    raw, op = mutate_bytes(data, raw)
    root.mkdir()
    (root / "WikihowText_data.json").write_bytes(raw)
    link_tree(SAMPLE / "wikihow" / "wiki_images", root / "wiki_images")
    log += [op, *damage_images(data, root / "wiki_images")]
    options = {
        "text": str(root / "WikihowText_data.json"),
        "images": str(root / "wiki_images"),
        "max_answer_steps": 3,
    }
    return options, log


def layout_coco(data: st.DataObject, tmp: Path) -> tuple[dict[str, Any], list[str]]:
    root = tmp / "coco"
    captions = _json(SAMPLE / "coco" / "annotations" / "captions_val2017.json")
    instances = _json(SAMPLE / "coco" / "annotations" / "instances_val2017.json")
    with_instances = sorted({a["image_id"] for a in instances["annotations"]})
    ids = set(subset(data, with_instances))
    cap = {
        **captions,
        "images": [i for i in captions["images"] if i["id"] in ids],
        "annotations": [a for a in captions["annotations"] if a["image_id"] in ids],
    }
    ins = {
        **instances,
        "images": [i for i in instances["images"] if i["id"] in ids],
        "annotations": [a for a in instances["annotations"] if a["image_id"] in ids][:6],
    }
    which = data.draw(st.sampled_from(["captions", "instances", "both"]))
    log = []
    if which != "instances":
        cap, m = mutate_json(data, cap)
        log += [f"captions: {x}" for x in m]
    if which != "captions":
        ins, m = mutate_json(data, ins)
        log += [f"instances: {x}" for x in m]
    (root / "annotations").mkdir(parents=True)
    raw, op = mutate_bytes(data, dumps(cap, data))
    (root / "annotations" / "captions_val2017.json").write_bytes(raw)
    (root / "annotations" / "instances_val2017.json").write_bytes(dumps(ins, data))
    link_tree(SAMPLE / "coco" / "val2017", root / "val2017")
    log += [op, *damage_images(data, root / "val2017")]
    return {"root": str(root), "split": "val"}, log


@cache
def _remi_rows() -> tuple[pa.Schema, list[dict[str, Any]]]:
    table = pq.read_table(SAMPLE / "remi" / "test.parquet")
    return table.schema, table.to_pylist()


def layout_remi(data: st.DataObject, tmp: Path) -> tuple[dict[str, Any], list[str]]:
    """ReMI rows (parquet): values mutated within their column types, columns dropped,
    retyped or renamed, image bytes damaged, rows duplicated, the file truncated."""
    schema, all_rows = _remi_rows()
    rows = copy.deepcopy(subset(data, all_rows))
    log = []
    columns = list(schema.names)
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["value", "value", "image", "row", "column"]))
        row = rows[data.draw(st.integers(0, len(rows) - 1))]
        col = data.draw(st.sampled_from(columns))
        if op == "value":
            if pa.types.is_struct(schema.field(col).type):
                row[col] = None
            else:
                row[col] = data.draw(st.sampled_from(["", "x" * 20_000, "<image1>", None]))
        elif op == "image":
            images = [c for c in columns if c.startswith("image_") and isinstance(row.get(c), dict)]
            if images:
                c = data.draw(st.sampled_from(images))
                part = data.draw(st.sampled_from(["bytes", "path"]))
                if part == "bytes":
                    row[c] = {**row[c], "bytes": bad_image(data, row[c]["bytes"] or b"")}
                else:
                    row[c] = {**row[c], "path": data.draw(st.sampled_from(WEIRD_SCALARS[14:28]))}
                    if row[c]["path"] == "\ud800":
                        row[c]["path"] = "\u202e"
                col = c
        elif op == "row":
            rows.append(copy.deepcopy(row))  # a duplicate row
        else:
            kind = data.draw(st.sampled_from(["drop", "int", "rename", "list"]))
            for r in rows:
                if kind == "drop":
                    r.pop(col, None)
                elif kind == "int":
                    r[col] = 10**12
                elif kind == "rename":
                    r[col + "_x"] = r.pop(col, None)
                else:
                    r[col] = [str(r.get(col))[:10]]
            columns = list(rows[0])
            op = f"column {kind}"
        log.append(f"{op} {col}")
    path = tmp / "remi" / "test.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(rows),
        path,
        row_group_size=data.draw(st.sampled_from([1, 2, 1000])),
    )
    raw, op = mutate_bytes(data, path.read_bytes())
    path.write_bytes(raw)
    log.append(op)
    return {"parquet": str(tmp / "remi" / "*.parquet")}, log


LAYOUTS = {
    "coco": layout_coco,
    "mathvista": layout_mathvista,
    "remi": layout_remi,
    "vist": layout_vist,
    "wikihow": layout_wikihow,
}


# ---------------------------------------------------------------------------------------------
# running the per-element code of each stage
# ---------------------------------------------------------------------------------------------


def split_outputs(outputs: list[Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    """(main outputs, dead letters) of one ``process`` call; anything else is a failure."""
    main, dead = [], []
    for out in outputs:
        if isinstance(out, beam.pvalue.TaggedOutput):
            assert out.tag == DEAD, out.tag
            dead.append(out.value)
        else:
            main.append(out)
    return main, dead


def check_dead_letter(letter: dict[str, Any], stage: str | None = None) -> None:
    """A dead letter has its stage, a snake_case reason, string ids, and writes as strict JSON."""
    assert set(letter) == {"stage", "reason", "source", "source_id", "detail", "unit"}, letter
    assert stage is None or letter["stage"] == stage, letter
    assert letter["reason"] and letter["reason"].replace("_", "").isalnum(), letter
    assert isinstance(letter["source_id"], str) and isinstance(letter["detail"], str), letter
    assert letter["unit"] in (UNIT_RECORD, UNIT_IMAGE), letter
    line = dead_letter_json(letter)
    line.encode("utf-8")
    assert json.loads(line, parse_constant=_no_constant)["reason"] == letter["reason"]


def _no_constant(name: str) -> Any:
    raise AssertionError(f"a dead letter was written with {name}")


def read_all(name: str, options: dict[str, Any]) -> tuple[list[dict], list[dict], set[str]]:
    """Run the reader's per-file step without Beam: (items, dead letters, the dead-letter ids
    of its whole files)."""
    reader = get_source(name).reader(options)
    reader.setup()
    items, dead = [], []
    for path in reader.files:
        got = list(reader.read_file(path))  # read_file's outputs are what the ParDo yields
        main, letters = split_outputs(got)
        items += main
        dead += letters
    return items, dead, {reader.file_unit(path) for path in reader.files}


def run_stages(
    name: str,
    items: list[dict[str, Any]],
    options: dict[str, Any],
    store_dir: Path,
    policy: str,
) -> dict[str, Any]:
    """Items through the reader's restructure hook, LoadImagesFn, ValidateRecordsFn,
    PickOneFn, ToRecordRow and the dedupe decisions, as the build runs them; each stage's
    counts reconcile."""
    reader = get_source(name).reader(options)
    load = LoadImagesFn(
        "", ImagesConfig.from_block({"on_bad_image": policy}), ImageStore(str(store_dir))
    )
    load.setup()
    drafts, dead = [], []
    for item in items:
        main, letters = split_outputs([reader.restructure_item(item)])
        assert len(main) + len(letters) == 1, (main, letters)
        drafts += main
        dead += letters
    records = run_from_drafts(drafts, load, dead)
    return {"records": records, "dead": dead}


def run_from_drafts(drafts: list[dict], load: LoadImagesFn, dead: list[dict]) -> list[dict]:
    records = []
    for draft in drafts:
        main, letters = split_outputs(list(load.process(draft)))
        assert len(main) + sum(d["unit"] == UNIT_RECORD for d in letters) == 1, letters
        records += main
        dead += letters
    return run_from_records(records, dead)


def one_out_each(process, elements: list[dict], dead: list[dict]) -> list[dict]:
    """Run a stage's ``process`` on each element: exactly one output or one dead letter each;
    returns the outputs and adds the dead letters to ``dead``."""
    out = []
    for element in elements:
        main, letters = split_outputs(list(process(element)))
        assert len(main) + len(letters) == 1, (main, letters)
        out += main
        dead += letters
    return out


def run_from_records(records: list[dict], dead: list[dict]) -> list[dict]:
    """ValidateRecords -> DropDuplicateIds -> dedupe decisions -> the Parquet row check."""
    valid = one_out_each(ValidateRecordsFn().process, records, dead)
    by_id: dict[str, list[dict]] = defaultdict(list)
    for record in valid:
        by_id[record["id"]].append(record)
    unique = []
    for record_id, group in sorted(by_id.items()):
        main, letters = split_outputs(list(PickOneFn().process((record_id, group))))
        assert len(main) == 1 and len(letters) == len(group) - 1
        unique += main
        dead += letters
    run_dedupe(unique)
    rows = one_out_each(ToRecordRow().process, unique, dead)
    for letter in dead:
        check_dead_letter(letter)
    pa.Table.from_pylist(rows, schema=_record_schema())  # every checked row writes
    return rows


@cache
def _record_schema() -> pa.Schema:
    from schemas.parquet import RECORD_SCHEMA

    return RECORD_SCHEMA


def run_dedupe(records: list[dict]) -> None:
    """The dedupe stage's pure functions on valid records (what its DoFns call)."""
    config = DedupeConfig.from_block()
    keys = [key for record in records for key in dedupe.image_keys(record)]
    bands = defaultdict(list)
    for key in keys:
        for band, member in dedupe.band_entries(key, config.phash_distance):
            bands[band].append(member)
    edges = [
        e for group in bands.values() for e in dedupe.verify_group(group, config.phash_distance)
    ]
    clusters = dedupe.image_clusters(edges)
    summaries = [dedupe.record_summary(r, clusters, config) for r in records]
    decisions = list(dedupe.decide_group(summaries, config.text_jaccard))
    for record_id, decision in decisions:
        dedupe.drop_detail(record_id, decision)
    dedupe.summarise_decisions(decisions)
    for record in records:
        dedupe.drop_frequent(
            record, set(clusters["canonical"].values()), clusters["canonical"], DROP_SEGMENT
        )


# ---------------------------------------------------------------------------------------------
# readers and every stage, per source
# ---------------------------------------------------------------------------------------------


def unit_bounds(name: str, options: dict[str, Any]) -> tuple[int, int] | None:
    """How many units the (mutated) input holds, as (least, most), read independently of the
    reader; None where the input is too broken to say (then the reader owes one dead letter
    for the file, checked by the caller)."""
    try:
        if name == "mathvista":
            doc = json.loads((Path(options["root"]) / "testmini.json").read_bytes())
            return (len(doc), len(doc)) if isinstance(doc, dict) else None
        if name == "remi":
            rows = pq.ParquetFile(next(Path(options["parquet"]).parent.glob("*.parquet")))
            return rows.metadata.num_rows, rows.metadata.num_rows
        if name == "wikihow":
            lines = [x for x in Path(options["text"]).read_bytes().splitlines() if x.strip()]
            most = 0
            for line in lines:
                try:
                    methods = json.loads(line).get("methods")
                except Exception:
                    methods = None
                most += len(methods) if isinstance(methods, list) and methods else 1
            return len(lines), most
        if name == "vist":
            doc = json.loads(next(Path(options["sis"]).parent.glob("*.json")).read_bytes())
            annotations = doc["annotations"]
            return (1, len(annotations)) if annotations else (0, 0)
        if name == "coco":
            caps = json.loads(
                (Path(options["root"]) / "annotations/captions_val2017.json").read_bytes()
            )
            images = caps["images"]
            more = len(caps.get("annotations") or []) + 1000  # + unknown-image annotations
            return len(images), len(images) + more
    except Exception:
        return None
    return None


@pytest.mark.parametrize("name", SOURCES)
@FUZZ
@given(data=st.data())
def test_readers_and_stages_on_mutated_sources(name: str, data: st.DataObject):
    """One source's real records, mutated, through its reader and every stage after it."""
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as tmp, time_limit(EXAMPLE_SECONDS):
        options, log = LAYOUTS[name](data, Path(tmp))
        note(f"mutations: {log}")
        bounds = unit_bounds(name, options)
        items, dead, file_units = read_all(name, options)
        for letter in dead:
            check_dead_letter(letter, "read")
            assert letter["source"] == name
        for item in items:
            assert {"source", "source_id", "split", "source_file"} <= set(item), item
            assert item["source"] == name
        # every unit is one item or one dead letter: as many as the input holds, or (a
        # file-level failure ends the file) what came before it plus one for the file
        total = len(items) + len(dead)
        whole_file = [d for d in dead if d["source_id"] in file_units]
        if bounds is not None and not whole_file:
            least, most = bounds
            assert least <= total <= most, (total, bounds)
        if bounds is None:  # too broken to count: at least the file's dead letter
            assert total >= 1
        if whole_file:
            assert len(whole_file) <= len(file_units), whole_file
        assert_no_bug(dead, "the reader")
        # restructure: a draft or a RecordError, nothing else
        restructure = get_source(name).restructure
        for item in items:
            with contextlib.suppress(RecordError):
                restructure(copy.deepcopy(item), dict(options))
        policy = data.draw(st.sampled_from([DROP_RECORD, DROP_SEGMENT]))
        out = run_stages(name, items, options, Path(tmp) / "build", policy)
        assert_no_bug(out["dead"])


# ---------------------------------------------------------------------------------------------
# stages alone, on mutated drafts and records
# ---------------------------------------------------------------------------------------------


@cache
def sample_drafts() -> tuple[dict[str, Any], ...]:
    """Two real drafts per source, restructured from the bundled sample."""
    from tests.sources.test_contract import EXPECTED

    drafts = []
    for name in SOURCES:
        options = EXPECTED[name].options
        items, _, _ = read_all(name, options)
        kept = 0
        for item in items:
            try:
                drafts.append(get_source(name).restructure(item, dict(options)))
            except RecordError:
                continue
            kept += 1
            if kept == 2:
                break
    return tuple(drafts)


@cache
def sample_records() -> tuple[dict[str, Any], ...]:
    records = []
    for draft in sample_drafts():
        with contextlib.suppress(RecordError):
            records.append(load_images(copy.deepcopy(draft)))
    return tuple(records)


def mutated_batch(data: st.DataObject, elements: tuple[dict, ...]) -> list[dict]:
    """Up to 4 of ``elements``, copied and mutated (4 mutations); the mappings among them."""
    chosen = [copy.deepcopy(e) for e in subset(data, list(elements), 4)]
    mutated, log = mutate_json(data, chosen, 4)
    note(f"mutations: {log}")
    if not isinstance(mutated, list):
        mutated = [mutated]
    return [m for m in mutated if isinstance(m, dict)]


def assert_no_bug(dead: list[dict], where: str = "a stage") -> None:
    """No ``unexpected_error`` (the reason for a bug) among ``dead`` (unless FUZZ_DISCOVER)."""
    bugs = [d for d in dead if d["reason"] == "unexpected_error"]
    assert not bugs or DISCOVER, f"{where} hit a bug: {bugs[0]}"


@settings(FUZZ, max_examples=STAGE_EXAMPLES)
@given(data=st.data())
def test_stages_on_mutated_drafts(data: st.DataObject):
    """Mutated drafts (and duplicates) through LoadImages, validation, ids, dedupe, writer."""
    mutated = mutated_batch(data, sample_drafts())
    policy = data.draw(st.sampled_from([DROP_RECORD, DROP_SEGMENT]))
    with tempfile.TemporaryDirectory(prefix="fuzz-drafts-") as tmp, time_limit(EXAMPLE_SECONDS):
        load = LoadImagesFn("", ImagesConfig.from_block({"on_bad_image": policy}), ImageStore(tmp))
        load.setup()
        dead: list[dict] = []
        run_from_drafts(mutated, load, dead)
        assert_no_bug(dead)


@settings(FUZZ, max_examples=STAGE_EXAMPLES)
@given(data=st.data())
def test_stages_on_mutated_records(data: st.DataObject):
    """Mutated finished records (values no reader makes) through validation, DropDuplicateIds,
    dedupe and the Parquet row check."""
    mutated = mutated_batch(data, sample_records())
    with time_limit(EXAMPLE_SECONDS):
        dead: list[dict] = []
        run_from_records(mutated, dead)
        assert_no_bug(dead)


# ---------------------------------------------------------------------------------------------
# end to end: `mmloom build --no-clip` on mutated corpora
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@settings(FUZZ, max_examples=BUILD_EXAMPLES)
@given(data=st.data())
def test_build_on_mutated_corpus(data: st.DataObject):
    """The real build (DirectRunner, --no-clip) on two mutated sources: it finishes, writes its
    manifest, and stats.json reconciles (read = written + dropped) for every source."""
    from pipelines.cli import main
    from schemas.buildio import read_stats, require_complete

    names = data.draw(st.lists(st.sampled_from(SOURCES), min_size=1, max_size=2, unique=True))
    with tempfile.TemporaryDirectory(prefix="fuzz-build-") as tmp, time_limit(BUILD_SECONDS):
        blocks, log = [], []
        for name in names:
            options, m = LAYOUTS[name](data, Path(tmp))
            log += [f"{name}: {x}" for x in m]
            lines = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in options.items())
            blocks.append(f"  {name}:\n{lines}")
        note(f"mutations: {log}")
        config = Path(tmp) / "fuzz.yaml"
        config.write_text("version: 1\nname: fuzz\nsources:\n" + "".join(blocks))
        out = Path(tmp) / "out"
        argv = ["build", "--config", str(config), "--output", str(out), "--no-clip"]
        assert main([*argv, "--progress-every", "0"]) == 0
        manifest = require_complete(str(out))
        stats = read_stats(str(out))
        assert stats["reconciled"] is True, stats["sources"]
        totals = stats["totals"]
        assert totals["read"] == totals["written"] + sum(totals["dropped"].values())
        assert manifest["records"]["rows"] == totals["written"]
        assert sorted(stats["sources"]) == sorted(names)
        shutil.rmtree(out, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# what the fuzzing found, pinned
# ---------------------------------------------------------------------------------------------


def test_lone_surrogate_in_a_valid_record_is_a_write_dead_letter_not_a_crash():
    """A lone surrogate (``"\\ud800"`` in a source's JSON) passes validation; DropDuplicateIds'
    tiebreak hashed the record as strict UTF-8 and raised. Now the writer rejects it."""
    record = copy.deepcopy(sample_records()[0])
    first = next(s for s in record["question"] if s["text"])
    first["text"] += "\ud800"
    dead: list[dict] = []
    assert run_from_records([record, copy.deepcopy(record)], dead) == []
    assert sorted(d["reason"] for d in dead) == ["duplicate_id", "invalid_utf8"]


def test_validate_takes_a_record_whose_provenance_is_not_a_mapping():
    record = copy.deepcopy(sample_records()[0])
    record["provenance"] = ["not", "a", "mapping"]
    (out,) = ValidateRecordsFn().process(record)
    assert out.tag == DEAD and out.value["reason"] == "schema_invalid"
    assert out.value["source"] == "unknown"


def test_load_images_takes_a_draft_without_provenance(tmp_path):
    """A restructure bug that returns a draft without a provenance mapping is a dead letter of
    LoadImages (source ``unknown``), not a crash of the job."""
    fn = LoadImagesFn("", ImagesConfig.from_block(), None)
    fn.setup()
    draft = {"images": [], "question": [], "answer": [], "gt_answer": []}
    (out,) = fn.process(draft)
    assert out.tag == DEAD and out.value["source"] == "unknown"


def test_mathvista_json_that_is_not_utf8_is_a_malformed_file(tmp_path):
    """Found by the fuzzer: a ``testmini.json`` with a byte that is not UTF-8 was an
    ``unexpected_error`` (the reason for a bug) instead of ``malformed_file``."""
    root = tmp_path / "mathvista"
    shutil.copytree(SAMPLE / "mathvista", root)
    path = root / "testmini.json"
    path.write_bytes(b"\xff" + path.read_bytes())
    reader = ReadMathVista({"root": str(root)})
    reader.setup()
    (out,) = [o for f in reader.files for o in reader.read_file(f)]
    assert out.tag == DEAD and out.value["reason"] == "malformed_file", out.value
    assert out.value["source_id"] == "testmini.json"
    assert str(tmp_path) not in out.value["detail"]
