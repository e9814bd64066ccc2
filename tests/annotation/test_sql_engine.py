"""The SQL search engine: its text analysis (pure) and its query semantics (real server)."""

from __future__ import annotations

import sqlite3
import sys
import uuid
from pathlib import Path

import argilla as rg
import pytest

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
