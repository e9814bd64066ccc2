"""The SQL search engine: its text analysis (pure) and its query semantics (real server)."""

from __future__ import annotations

import http.server
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar

import argilla as rg
import pytest

from annotation.server import install

sys.path.insert(
    0, str(Path(__file__).resolve().parents[2] / "annotation" / "server" / "argilla_ext")
)
from mmloom_argilla_sql.textquery import (
    FTS_TOKENIZE,
    compile_query,
    document_text,
    restrict_to_column,
    tokenize,
)

EXT_DIR = Path(__file__).resolve().parents[2] / "annotation" / "server" / "argilla_ext"


def test_tokenize_follows_standard_analyzer():
    text = "Don't stop: U.S.A. costs 3.14 or 1,000 apples,oranges foo_bar Café 中文 e-mail"
    assert tokenize(text) == [
        "don't", "stop", "u.s.a", "costs", "3.14", "or", "1,000", "apples", "oranges",
        "foo_bar", "café", "中", "文", "e", "mail",
    ]  # fmt: skip
    assert tokenize("!!! ...") == []


@pytest.mark.parametrize(
    ("query", "kind", "fts"),
    [
        ("cat", "pos", '"cat"'),
        ("cat dog", "pos", '("cat") AND ("dog")'),
        ("cat | dog", "pos", '("cat") OR ("dog")'),
        ("cat -dog", "pos", '("cat") NOT ("dog")'),
        ("-dog", "neg", '"dog"'),
        ("cat | -dog", "neg", '("dog") NOT ("cat")'),
        ('"big dog"', "pos", '"big dog"'),
        ("do*", "pos", '"do"*'),
        ("(a b) | c", "pos", '(("a") AND ("b")) OR ("c")'),
        ("e-mail", "pos", '("e" AND "mail")'),
        ("!!!", "none", ""),
    ],
)
def test_compile_query(query, kind, fts):
    compiled = compile_query(query)
    assert (compiled.kind, compiled.fts) == (kind, fts)


def test_compiled_queries_run_on_fts5():
    conn = sqlite3.connect(":memory:")
    tokenizer = FTS_TOKENIZE.replace("'", "''")
    conn.execute(
        f"CREATE VIRTUAL TABLE f USING fts5(rid UNINDEXED, c0, c1, tokenize = '{tokenizer}')"
    )
    docs = {"a": ("The big dog don't bark at 3.14", "cats"), "b": ("a bird and a cat", "dogs")}
    for rid, (c0, c1) in docs.items():
        conn.execute("INSERT INTO f VALUES (?, ?, ?)", (rid, document_text(c0), document_text(c1)))

    def match(q, column=None):
        compiled = compile_query(q)
        fts = restrict_to_column(compiled.fts, column) if column else compiled.fts
        hits = {r for (r,) in conn.execute("SELECT rid FROM f WHERE f MATCH ?", (fts,))}
        return hits if compiled.kind == "pos" else set(docs) - hits

    assert match("dog") == {"a"}
    assert match("don't") == {"a"}
    assert match("3.14") == {"a"}
    assert match("bir*") == {"b"}
    assert match('"big dog"') == {"a"}
    assert match('"dog big"') == set()
    assert match("cats", column="c0") == set()
    assert match("cats", column="c1") == {"a"}
    assert match("-bird") == {"a"}
    assert match("cat | dogs") == {"b"}


def test_response_sort_pending_without_user_and_user_progress(argilla_server):
    client = rg.Argilla(api_url=argilla_server.url, api_key=argilla_server.api_key)
    settings = rg.Settings(
        fields=[rg.TextField("text")],
        questions=[rg.RatingQuestion("score", values=[1, 2, 3, 4, 5])],
        distribution=rg.TaskDistribution(min_submitted=2),
    )
    ds = rg.Dataset(
        name=f"engine-{uuid.uuid4().hex[:8]}",
        workspace=argilla_server.workspace,
        settings=settings,
        client=client,
    ).create()
    ds.records.log([rg.Record(id=f"e{i}", fields={"text": f"item {i}"}) for i in range(6)])
    carol = argilla_server.create_annotator(f"carol-{uuid.uuid4().hex[:6]}")
    dave = argilla_server.create_annotator(f"dave-{uuid.uuid4().hex[:6]}")
    with argilla_server.http() as http:
        items = http.post(f"/api/v1/datasets/{ds.id}/records/search", json={}).json()["items"]
    ids = {i["record"]["external_id"]: i["record"]["id"] for i in items}
    answers = {("e0", "c"): 5, ("e1", "c"): 1, ("e2", "c"): 3, ("e2", "d"): 5, ("e3", "d"): 2}
    for (record, who), value in answers.items():
        key = (carol if who == "c" else dave)["api_key"]
        with argilla_server.http(key) as http:
            body = {"status": "submitted", "values": {"score": {"value": value}}}
            assert (
                http.post(f"/api/v1/records/{ids[record]}/responses", json=body).status_code == 201
            )

    def search(body, key=None, me=False):
        path = f"/api/v1/{'me/' if me else ''}datasets/{ds.id}/records/search"
        with argilla_server.http(key) as http:
            result = http.post(path, json=body).json()
        return [i["record"]["external_id"] for i in result["items"]], result["total"]

    by_score = {"sort": [{"scope": {"entity": "response", "question": "score"}, "order": "desc"}]}
    # All users: average per record (e2: (3+5)/2 = 4), records without responses last.
    assert search(by_score)[0] == ["e0", "e2", "e3", "e1", "e4", "e5"]
    # Carol's own values only.
    assert search(by_score, key=carol["api_key"], me=True)[0][:3] == ["e0", "e2", "e1"]
    nobody = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "response", "property": "status"},
                    "values": ["pending"],
                }
            ]
        }
    }
    assert search(nobody) == (["e4", "e5"], 2)
    assert search(nobody, key=dave["api_key"], me=True)[1] == 4
    completed = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "record", "property": "status"},
                    "values": ["completed"],
                }
            ]
        }
    }
    assert search(completed) == (["e2"], 1)  # min_submitted=2
    with argilla_server.http(carol["api_key"]) as http:
        metrics = http.get(f"/api/v1/me/datasets/{ds.id}/metrics").json()["responses"]
    assert metrics == {"total": 6, "submitted": 3, "discarded": 0, "draft": 0, "pending": 3}
    negative = {"query": {"text": {"q": "-item"}}}
    assert search(negative)[1] == 0
    negative_one = {"query": {"text": {"q": "-1"}}}
    assert search(negative_one)[1] == 5
    ds.delete()


# -- regressions found by argilla-server's own search-engine suite (make test-argilla-conformance)


def _engine(argilla_server, body: str) -> object:
    """Run ``body`` (async code using ``engine`` and ``dataset(id)``) in the server's venv.

    The engine is the production ``SQLSearchEngine`` on the test server's own database, for
    calls the REST API cannot make (an empty status filter, ``create_index``). ``body`` sets
    ``result``, which comes back through JSON.
    """
    script = (
        "import asyncio, json\n"
        "from uuid import UUID\n"
        "from argilla_server.models import Dataset, User\n"
        "from argilla_server.search_engine import ResponseFilterScope, TermsFilter\n"
        "from mmloom_argilla_sql.engine import SQLSearchEngine\n"
        "def dataset(id): return Dataset(id=UUID(id), status='ready')\n"
        "async def main():\n"
        "    engine = await SQLSearchEngine.new_instance()\n"
        "    result = None\n"
        + "".join(f"    {line}\n" for line in body.strip().splitlines())
        + "    await engine.close()\n"
        "    print(json.dumps(result))\n"
        "asyncio.run(main())\n"
    )
    home = argilla_server.home
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "PYTHON"))},
        "PYTHONPATH": str(EXT_DIR),
        "ARGILLA_HOME_PATH": str(home),
        "ARGILLA_DATABASE_URL": f"sqlite+aiosqlite:///{home / 'argilla.db'}",
    }
    python = install.venv_python(install.default_venv())
    out = subprocess.run(
        [str(python), "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _client(argilla_server) -> rg.Argilla:
    """The SDK client; made before any settings object (they look up the default client)."""
    return rg.Argilla(api_url=argilla_server.url, api_key=argilla_server.api_key)


def _new_dataset(client: rg.Argilla, argilla_server, settings: rg.Settings) -> rg.Dataset:
    return rg.Dataset(
        name=f"engine-{uuid.uuid4().hex[:8]}",
        workspace=argilla_server.workspace,
        settings=settings,
        client=client,
    ).create()


def test_empty_response_status_filter_without_user_matches_every_record(argilla_server):
    client = _client(argilla_server)
    settings = rg.Settings(
        fields=[rg.TextField("text")],
        questions=[rg.RatingQuestion("score", values=[1, 2, 3])],
    )
    ds = _new_dataset(client, argilla_server, settings)
    ds.records.log([rg.Record(id=f"s{i}", fields={"text": f"item {i}"}) for i in range(3)])
    erin = argilla_server.create_annotator(f"erin-{uuid.uuid4().hex[:6]}")
    with argilla_server.http() as http:
        items = http.post(f"/api/v1/datasets/{ds.id}/records/search", json={}).json()["items"]
    with argilla_server.http(erin["api_key"]) as http:
        body = {"status": "draft", "values": {"score": {"value": 2}}}
        record_id = items[0]["record"]["id"]
        assert http.post(f"/api/v1/records/{record_id}/responses", json=body).status_code == 201
    totals = _engine(
        argilla_server,
        f"""
ds = dataset({str(ds.id)!r})
erin = User(id=UUID({erin["id"]!r}))
result = []
for user in (None, erin):
    flt = TermsFilter(scope=ResponseFilterScope(property="status", user=user), values=[])
    result.append((await engine.search(ds, filter=flt)).total)
""",
    )
    # No status and no user: every record (ES match_all); with a user: the user's records.
    assert totals == [3, 1]
    ds.delete()


def _metadata_property(argilla_server, dataset_id, name: str, kind: str) -> str:
    with argilla_server.http() as http:
        created = http.post(
            f"/api/v1/datasets/{dataset_id}/metadata-properties",
            json={"name": name, "title": name, "settings": {"type": kind}},
        )
        assert created.status_code == 201, created.text
        return created.json()["id"]


def test_numeric_strings_count_in_numeric_metadata_ranges_metrics_and_sort(argilla_server):
    client = _client(argilla_server)
    # Records logged before the property existed may hold numbers as strings; Elasticsearch
    # coerces "00003" to 3 in a long field, and so must the engine (ranges, min/max, sort).
    settings = rg.Settings(fields=[rg.TextField("text")], allow_extra_metadata=True)
    settings.questions = [rg.TextQuestion("note")]
    ds = _new_dataset(client, argilla_server, settings)
    values = {"a": "00003", "b": 7, "c": "x", "d": "12", "e": 5.9, "f": True, "g": ["1", 20]}
    ds.records.log(
        [rg.Record(id=k, fields={"text": k}, metadata={"n": v}) for k, v in values.items()]
    )
    prop_id = _metadata_property(argilla_server, ds.id, "n", "integer")

    def ids(body):
        with argilla_server.http() as http:
            r = http.post(f"/api/v1/datasets/{ds.id}/records/search", json=body)
        assert r.status_code == 200, r.text
        return [i["record"]["external_id"] for i in r.json()["items"]]

    def in_range(ge, le):
        flt = {"type": "range", "scope": {"entity": "metadata", "metadata_property": "n"}}
        return sorted(ids({"filters": {"and": [{**flt, "ge": ge, "le": le}]}}))

    assert in_range(3, 5) == ["a", "e"]  # "00003" -> 3; 5.9 -> 5 (long truncates)
    assert in_range(10, 30) == ["d", "g"]  # "12"; a list matches through any item (20)
    assert in_range(0, 2) == ["g"]  # the list's "1"
    with argilla_server.http() as http:
        metrics = http.get(f"/api/v1/metadata-properties/{prop_id}/metrics").json()
    assert (metrics["min"], metrics["max"]) == (1, 20)
    order = {"sort": [{"scope": {"entity": "metadata", "metadata_property": "n"}, "order": "asc"}]}
    # numbers order: g (min 1), a (3), e (5), b (7), d (12); no number: c, f last
    assert ids(order)[:5] == ["g", "a", "e", "b", "d"]
    assert sorted(ids(order)[5:]) == ["c", "f"]
    ds.delete()


def test_float_metadata_metrics_are_32_bit(argilla_server):
    client = _client(argilla_server)
    settings = rg.Settings(
        fields=[rg.TextField("text")],
        questions=[rg.TextQuestion("note")],
        metadata=[rg.FloatMetadataProperty("x")],
    )
    ds = _new_dataset(client, argilla_server, settings)
    xs = [-149.13, 0.1, 120020.13]
    ds.records.log([rg.Record(fields={"text": str(x)}, metadata={"x": x}) for x in xs])
    with argilla_server.http() as http:
        props = http.get(f"/api/v1/me/datasets/{ds.id}/metadata-properties").json()["items"]
        prop_id = next(p["id"] for p in props if p["name"] == "x")
        metrics = http.get(f"/api/v1/metadata-properties/{prop_id}/metrics").json()
    # Elasticsearch stores float properties as 32-bit floats, and the API rounds metrics to
    # 5 decimals: float32(120020.13) = 120020.1328125 -> 120020.13281 (64-bit: 120020.13);
    # float32(-149.13) = -149.1300048828125 -> -149.13.
    assert (metrics["min"], metrics["max"]) == (-149.13, 120020.13281)
    ds.delete()


def test_create_index_twice_keeps_the_text_index(argilla_server):
    client = _client(argilla_server)
    settings = rg.Settings(fields=[rg.TextField("text")], questions=[rg.TextQuestion("note")])
    ds = _new_dataset(client, argilla_server, settings)
    ds.records.log([rg.Record(fields={"text": w}) for w in ("alpha beta", "beta", "gamma")])

    def hits(q):
        with argilla_server.http() as http:
            body = {"query": {"text": {"q": q}}}
            return http.post(f"/api/v1/datasets/{ds.id}/records/search", json=body).json()["total"]

    assert (hits("beta"), hits("gamma")) == (2, 1)
    _engine(argilla_server, f"await engine.create_index(dataset({str(ds.id)!r}))")
    assert (hits("beta"), hits("gamma")) == (2, 1)
    ds.delete()


# -- the launcher's speed-ups of argilla-server change no result (launcher._speed_up_server)


def test_metadata_values_are_still_validated(argilla_server):
    client = _client(argilla_server)
    settings = rg.Settings(
        fields=[rg.TextField("text")],
        questions=[rg.TextQuestion("note")],
        metadata=[rg.IntegerMetadataProperty("n", min=0, max=10), rg.TermsMetadataProperty("t")],
    )
    ds = _new_dataset(client, argilla_server, settings)

    def put(metadata):
        item = {"fields": {"text": "x"}, "metadata": metadata}
        with argilla_server.http() as http:
            return http.put(f"/api/v1/datasets/{ds.id}/records/bulk", json={"items": [item]})

    assert put({"n": 3, "t": "a"}).status_code == 200
    for bad in ({"n": "3"}, {"n": 2.5}, {"n": 11}):
        response = put(bad)
        assert response.status_code == 422, (bad, response.text)
        assert "'n' metadata property validation failed" in response.text
    ds.delete()


class _Receiver(http.server.BaseHTTPRequestHandler):
    events: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).events.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_record_webhooks_still_fire_on_bulk_upserts(argilla_server):
    client = _client(argilla_server)
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.events = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = {
        "url": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
        "events": ["record.created", "record.updated"],
    }
    with argilla_server.http() as http_client:
        webhook = http_client.post("/api/v1/webhooks", json=hook)
        assert webhook.status_code == 201, webhook.text
    try:
        settings = rg.Settings(fields=[rg.TextField("text")], questions=[rg.TextQuestion("note")])
        ds = _new_dataset(client, argilla_server, settings)
        ds.records.log([rg.Record(id=f"w{i}", fields={"text": f"w {i}"}) for i in range(3)])
        ds.records.log([rg.Record(id="w0", fields={"text": "w 0, edited"})])
        want = {("record.created", f"w{i}") for i in range(3)} | {("record.updated", "w0")}
        got: set = set()
        for _ in range(600):  # the worker delivers them; give it up to a minute
            got = {(e["type"], e["data"]["external_id"]) for e in _Receiver.events}
            if want <= got:
                break
            time.sleep(0.1)
        assert want <= got
        ds.delete()
    finally:
        with argilla_server.http() as http_client:
            http_client.delete(f"/api/v1/webhooks/{webhook.json()['id']}").raise_for_status()
        receiver.shutdown()
