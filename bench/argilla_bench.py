"""Benchmark the local Argilla (argilla-server 2.8 + mmloom's SQL search engine).

    .venv/bin/python bench/argilla_bench.py [--log-records 10000] [--records 50000]

Starts a server with ``annotation.server.runtime.serve`` in a temporary home, then prints:

1. logging throughput (records/s) for ``--log-records`` records through the argilla SDK,
   and, as the same-run baseline, for ``--baseline-records`` records sent as raw HTTP bulk
   requests (the server's cost without the SDK);
2. search latency (median and p95, ms) at ``--records`` records for the requests the
   annotation page and the SDK issue: an annotator's pending queue (``/me`` search with a
   response-status filter, per-user order), a text search, a metadata filter with a sort,
   and a text search combined with a filter. The baseline is a plain full scan of the same
   SQLite tables in Python (tokenize every record's text and test the filter per record),
   measured in the same run; the ratio is printed.

The server runs with the launcher's speed-ups of argilla-server (see
``mmloom_argilla_sql.launcher._speed_up_server``); the temporary home is removed at the end.

Records beyond ``--log-records`` are added by copying the logged rows inside Argilla's
SQLite database (new ids, same dataset) and rebuilding the text index with the engine's
``reindex`` command (logging 50,000 records through the API takes tens of minutes on a
2-core machine); pass ``--fill api`` to log them all through the API instead.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import argilla as rg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "annotation" / "server" / "argilla_ext"))

from mmloom_argilla_sql.textquery import tokenize  # noqa: E402

from annotation.server import install, runtime  # noqa: E402

WORDS = [
    "story",
    "photo",
    "family",
    "beach",
    "dinner",
    "wedding",
    "party",
    "garden",
    "kitchen",
    "recipe",
    "chart",
    "triangle",
    "angle",
    "graph",
    "museum",
    "mountain",
    "river",
    "city",
    "street",
    "market",
    "dog",
    "cat",
    "bird",
    "horse",
    "train",
    "bus",
]
SOURCES = ("vist", "wikihow", "mathvista", "remi", "coco")


def _record(i: int) -> dict:
    rnd = (i * 2654435761) % 2**32
    words = [WORDS[(rnd >> k) % len(WORDS)] for k in range(0, 24, 3)]
    return {
        "fields": {
            "text": f"Item {i}: " + " ".join(words),
            "image": f"http://127.0.0.1:9/images/{i:06d}.png",
        },
        "metadata": {"source": SOURCES[i % len(SOURCES)], "n": i, "clip": (rnd % 1000) / 1000},
        "external_id": f"b-{i:06d}",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _log_sdk(dataset: rg.Dataset, start: int, count: int) -> float:
    records = [
        rg.Record(id=r["external_id"], fields=r["fields"], metadata=r["metadata"])
        for r in map(_record, range(start, start + count))
    ]
    t0 = time.perf_counter()
    dataset.records.log(records, batch_size=500)
    return count / (time.perf_counter() - t0)


def _log_http(http: httpx.Client, dataset_id: str, start: int, count: int) -> float:
    t0 = time.perf_counter()
    for lo in range(start, start + count, 500):
        items = [_record(i) for i in range(lo, min(lo + 500, start + count))]
        http.put(
            f"/api/v1/datasets/{dataset_id}/records/bulk", json={"items": items}
        ).raise_for_status()
    return count / (time.perf_counter() - t0)


def _fill_sql(home: Path, dataset_id: str, have: int, want: int, python: Path) -> None:
    """Add records as rows of Argilla's ``records`` table, then rebuild the text index."""
    conn = sqlite3.connect(home / "argilla.db", timeout=60)
    ds_hex = uuid.UUID(dataset_id).hex
    (last,) = conn.execute(
        "SELECT max(inserted_at) FROM records WHERE dataset_id = ?", (ds_hex,)
    ).fetchone()
    new = []
    for i in range(have, want):
        rec = _record(i)
        fields, meta = json.dumps(rec["fields"]), json.dumps(rec["metadata"])
        new.append((uuid.uuid4().hex, fields, rec["external_id"], ds_hex, last, last, meta))
    with conn:
        conn.executemany(
            "INSERT INTO records (id, fields, external_id, dataset_id, inserted_at, updated_at, "
            "metadata, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
            new,
        )
    conn.close()
    env = runtime._child_env(home, runtime._read_state(home)["redis_url"])
    subprocess.run(
        [str(python), "-m", "mmloom_argilla_sql.launcher", "reindex", "--dataset-id", dataset_id],
        env=env, cwd=home, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _queries(user_key: str) -> list[tuple[str, dict, str | None]]:
    pending = {
        "type": "terms",
        "scope": {"entity": "response", "property": "status"},
        "values": ["pending"],
    }
    source = {
        "type": "terms",
        "scope": {"entity": "metadata", "metadata_property": "source"},
        "values": ["vist", "coco"],
    }
    clip = {
        "type": "range",
        "scope": {"entity": "metadata", "metadata_property": "clip"},
        "ge": 0.25,
        "le": 0.75,
    }
    return [
        ("annotator pending queue", {"filters": {"and": [pending]}}, user_key),
        ("text search", {"query": {"text": {"q": "wedding cat"}}}, None),
        (
            "metadata filter + sort",
            {
                "filters": {"and": [source, clip]},
                "sort": [
                    {"scope": {"entity": "metadata", "metadata_property": "n"}, "order": "desc"}
                ],
            },
            None,
        ),
        ("text + filter", {"query": {"text": {"q": "museum"}}, "filters": {"and": [source]}}, None),
    ]


def _scan_baseline(home: Path, dataset_id: str, body: dict) -> int:
    """Plain full scan: read every record and test text query and metadata filters in Python."""
    conn = sqlite3.connect(home / "argilla.db")
    hits = 0
    text = (body.get("query") or {}).get("text", {}).get("q")
    terms = set(tokenize(text)) if text else set()
    for fields, metadata in conn.execute(
        "SELECT fields, metadata FROM records WHERE dataset_id = ?", (uuid.UUID(dataset_id).hex,)
    ):
        if terms and not terms <= set(tokenize(json.loads(fields).get("text", ""))):
            continue
        meta = json.loads(metadata or "{}")
        ok = True
        for f in (body.get("filters") or {}).get("and", []):
            if f["scope"]["entity"] != "metadata":
                continue
            value = meta.get(f["scope"]["metadata_property"])
            if f["type"] == "terms":
                ok &= str(value) in f["values"]
            else:
                ok &= value is not None and f.get("ge", -1e300) <= value <= f.get("le", 1e300)
        hits += ok
    conn.close()
    return hits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log-records", type=int, default=10_000)
    parser.add_argument("--baseline-records", type=int, default=2_000)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--fill", choices=("sql", "api"), default="sql")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="mmloom-argilla-bench-"))
    api_key = secrets.token_urlsafe(32)
    info = runtime.serve(
        home, _free_port(), owner_password=secrets.token_urlsafe(16), owner_api_key=api_key,
        workspace="bench", log=lambda *_: None,
    )  # fmt: skip
    try:
        client = rg.Argilla(api_url=info.url, api_key=api_key)
        settings = rg.Settings(
            fields=[rg.TextField("text"), rg.ImageField("image")],
            questions=[rg.RatingQuestion("quality", values=[1, 2, 3, 4, 5])],
            metadata=[
                rg.TermsMetadataProperty("source"),
                rg.IntegerMetadataProperty("n"),
                rg.FloatMetadataProperty("clip"),
            ],
        )
        ds = rg.Dataset(name="bench", workspace="bench", settings=settings, client=client).create()
        http = httpx.Client(base_url=info.url, headers={"X-Argilla-Api-Key": api_key}, timeout=300)

        sdk_rate = _log_sdk(ds, 0, args.log_records)
        http_rate = _log_http(http, str(ds.id), args.log_records, args.baseline_records)
        have = args.log_records + args.baseline_records
        print(f"logging: {sdk_rate:.1f} records/s via the SDK ({args.log_records} records)")
        print(
            f"  baseline raw HTTP bulk: {http_rate:.1f} records/s "
            f"({args.baseline_records} records); SDK/raw = {sdk_rate / http_rate:.2f}"
        )

        if have < args.records:
            if args.fill == "api":
                _log_http(http, str(ds.id), have, args.records - have)
            else:
                _fill_sql(
                    home,
                    str(ds.id),
                    have,
                    args.records,
                    install.venv_python(install.default_venv()),
                )
        total = http.post(
            f"/api/v1/datasets/{ds.id}/records/search", json={}, params={"limit": 1}
        ).json()["total"]
        print(f"search at {total} records (median / p95 over {args.repeats} runs, ms):")

        user = http.post(
            "/api/v1/users",
            json={
                "first_name": "a",
                "username": "bench-annotator",
                "password": secrets.token_urlsafe(12),
                "role": "annotator",
            },
        ).json()
        ws = next(
            w for w in http.get("/api/v1/me/workspaces").json()["items"] if w["name"] == "bench"
        )
        http.post(
            f"/api/v1/workspaces/{ws['id']}/users", json={"user_id": user["id"]}
        ).raise_for_status()

        all_engine, all_scan = [], []
        for name, body, key in _queries(user["api_key"]):
            path = f"/api/v1/{'me/' if key else ''}datasets/{ds.id}/records/search"
            headers = {"X-Argilla-Api-Key": key} if key else {}
            http.post(
                path, json=body, params={"limit": 10}, headers=headers
            ).raise_for_status()  # warm
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                r = http.post(path, json=body, params={"limit": 10}, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            scan = []
            for _ in range(max(3, args.repeats // 5)):
                t0 = time.perf_counter()
                _scan_baseline(home, str(ds.id), body)
                scan.append((time.perf_counter() - t0) * 1000)
            all_engine += times
            all_scan += scan
            print(
                f"  {name:26s} engine {statistics.median(times):7.1f} / {_pct(times, 0.95):7.1f}"
                f"   full scan {statistics.median(scan):7.1f}   (total hits {r.json()['total']})"
            )
        med, p95 = statistics.median(all_engine), _pct(all_engine, 0.95)
        scan_med = statistics.median(all_scan)
        print(
            f"overall: median {med:.1f} ms, p95 {p95:.1f} ms (goal: median < 300 ms); "
            f"full-scan baseline median {scan_med:.1f} ms, ratio {scan_med / med:.1f}x "
            "(engine times include HTTP and Argilla's own work; the scan is SQL + Python only)"
        )
    finally:
        runtime.stop(home, log=lambda *_: None)
        shutil.rmtree(home, ignore_errors=True)  # the temporary home made above
    return 0


if __name__ == "__main__":
    sys.exit(main())
