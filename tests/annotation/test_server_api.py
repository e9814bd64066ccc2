"""The real argilla-server with the SQL engine, through the argilla SDK and raw HTTP.

One module-scoped dataset (text, image and custom fields; rating, label and text questions;
terms/integer/float metadata; a vector) gets 1,000 records; the tests then list, filter,
sort and search them, answer as two annotators (each sees only their own pending records),
read progress, and delete records and the dataset.
"""

from __future__ import annotations

import math
import uuid

import argilla as rg
import pytest

N_RECORDS = 1000
SOURCES = ("vist", "coco", "wikihow", "remi")
IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
    "hKmMIQAAAABJRU5ErkJggg=="
)


def _text(i: int) -> str:
    animal = "cats" if i % 3 == 0 else "dogs"
    extra = " and a rare zebra" if i % 100 == 7 else ""
    return f"Story {i}: a tale about {animal}{extra}."


def _vector(i: int) -> list[float]:
    angle = 2 * math.pi * i / N_RECORDS
    return [math.cos(angle), math.sin(angle), 0.0]


@pytest.fixture(scope="module")
def client(argilla_server) -> rg.Argilla:
    return rg.Argilla(api_url=argilla_server.url, api_key=argilla_server.api_key)


def _make_dataset(client, argilla_server) -> rg.Dataset:
    """A dataset of N_RECORDS records (fields, metadata, vectors, suggestions)."""
    settings = rg.Settings(
        fields=[
            rg.TextField("text"),
            rg.ImageField("image"),
            rg.CustomField("card", template="<b>{{record.fields.card.title}}</b>"),
        ],
        questions=[
            rg.RatingQuestion("quality", values=[1, 2, 3, 4, 5]),
            rg.LabelQuestion("topic", labels=["cats", "dogs", "other"]),
            rg.TextQuestion("note", required=False),
        ],
        metadata=[
            rg.TermsMetadataProperty("source"),
            rg.IntegerMetadataProperty("n"),
            rg.FloatMetadataProperty("x"),
        ],
        vectors=[rg.VectorField("emb", dimensions=3)],
        distribution=rg.TaskDistribution(min_submitted=1),
    )
    ds = rg.Dataset(
        name=f"api-{uuid.uuid4().hex[:8]}",
        workspace=argilla_server.workspace,
        settings=settings,
        client=client,
    ).create()
    records = [
        rg.Record(
            id=f"rec-{i:04d}",
            fields={"text": _text(i), "image": IMAGE, "card": {"title": f"card {i}"}},
            metadata={"source": SOURCES[i % 4], "n": i, "x": i / 10},
            vectors={"emb": _vector(i)},
            suggestions=[
                rg.Suggestion(
                    "topic", "cats" if i % 3 == 0 else "dogs", score=(i % 10) / 10, agent="clip"
                )
            ],
        )
        for i in range(N_RECORDS)
    ]
    ds.records.log(records)
    return ds


@pytest.fixture(scope="module")
def dataset(client, argilla_server):
    """Shared, read-only: every test that responds to or deletes records makes its own."""
    return _make_dataset(client, argilla_server)


@pytest.fixture
def own_dataset(client, argilla_server):
    """A dataset of this test's own, which it may change."""
    return _make_dataset(client, argilla_server)


def _search(
    argilla_server, dataset, body: dict, api_key: str | None = None, me: bool = False, **params
):
    path = f"/api/v1/{'me/' if me else ''}datasets/{dataset.id}/records/search"
    with argilla_server.http(api_key) as http:
        response = http.post(path, json=body, params={"limit": 50, **params})
    assert response.status_code == 200, response.text
    return response.json()


def _ids(result: dict) -> list[str]:
    return [item["record"]["external_id"] for item in result["items"]]


def test_log_and_list(dataset, argilla_server):
    records = list(dataset.records)
    assert len(records) == N_RECORDS
    assert {r.id for r in records} == {f"rec-{i:04d}" for i in range(N_RECORDS)}
    with argilla_server.http() as http:
        info = http.get("/api/v1/status").json()
    assert info["search_engine"]["name"] == "mmloom-sql"
    everything = _search(argilla_server, dataset, {}, limit=10, offset=990)
    assert everything["total"] == N_RECORDS
    assert _ids(everything) == [f"rec-{i:04d}" for i in range(990, 1000)]  # insertion order


def test_text_search(dataset, argilla_server, client):
    cats = list(dataset.records(query=rg.Query(query="cats")))
    assert {r.id for r in cats} == {f"rec-{i:04d}" for i in range(0, N_RECORDS, 3)}
    body = {"query": {"text": {"q": "zebra"}}}
    result = _search(argilla_server, dataset, body)
    assert result["total"] == 10
    assert set(_ids(result)) == {f"rec-{i:04d}" for i in range(7, N_RECORDS, 100)}
    assert all(item["query_score"] > 0 for item in result["items"])
    # simple_query_string operators: OR, NOT, phrase, prefix; one field only; image field.
    assert (
        _search(argilla_server, dataset, {"query": {"text": {"q": "zebra | cats"}}})["total"]
        == 334 + 10 - 3
    )
    assert (
        _search(argilla_server, dataset, {"query": {"text": {"q": "dogs -zebra"}}})["total"]
        == 666 - 7
    )
    assert (
        _search(argilla_server, dataset, {"query": {"text": {"q": '"rare zebra"'}}})["total"] == 10
    )
    assert _search(argilla_server, dataset, {"query": {"text": {"q": "zeb*"}}})["total"] == 10
    assert (
        _search(argilla_server, dataset, {"query": {"text": {"q": "card", "field": "text"}}})[
            "total"
        ]
        == 0
    )
    assert (
        _search(argilla_server, dataset, {"query": {"text": {"q": "card 5", "field": "card"}}})[
            "total"
        ]
        == 1
    )
    assert (
        _search(argilla_server, dataset, {"query": {"text": {"q": "cats", "field": "image"}}})[
            "total"
        ]
        == 0
    )


def test_filters(dataset, argilla_server):
    vist_big = rg.Query(
        filter=rg.Filter([("metadata.source", "==", "vist"), ("metadata.n", ">=", 500)])
    )
    found = list(dataset.records(query=vist_big))
    assert {r.id for r in found} == {f"rec-{i:04d}" for i in range(500, N_RECORDS, 4)}
    in_range = _search(
        argilla_server,
        dataset,
        {
            "filters": {
                "and": [
                    {
                        "type": "range",
                        "scope": {"entity": "metadata", "metadata_property": "x"},
                        "ge": 10,
                        "le": 20.05,
                    }
                ]
            }
        },
    )
    assert in_range["total"] == 101
    suggested = rg.Query(
        filter=rg.Filter([("topic.suggestion", "==", "cats"), ("topic.score", ">=", 0.9)])
    )
    assert {r.id for r in dataset.records(query=suggested)} == {
        f"rec-{i:04d}" for i in range(N_RECORDS) if i % 3 == 0 and i % 10 == 9
    }
    agent = _search(
        argilla_server,
        dataset,
        {
            "filters": {
                "and": [
                    {
                        "type": "terms",
                        "scope": {"entity": "suggestion", "question": "topic", "property": "agent"},
                        "values": ["clip"],
                    }
                ]
            }
        },
    )
    assert agent["total"] == N_RECORDS
    combined = _search(
        argilla_server,
        dataset,
        {
            "query": {"text": {"q": "zebra"}},
            "filters": {
                "and": [
                    {
                        "type": "terms",
                        "scope": {"entity": "metadata", "metadata_property": "source"},
                        "values": ["remi", "coco"],
                    }
                ]
            },
        },
    )
    assert set(_ids(combined)) == {f"rec-{i:04d}" for i in range(7, N_RECORDS, 100)}  # 7 % 4 == 3
    status = _search(
        argilla_server,
        dataset,
        {
            "filters": {
                "and": [
                    {
                        "type": "terms",
                        "scope": {"entity": "record", "property": "status"},
                        "values": ["pending"],
                    }
                ]
            }
        },
    )
    assert status["total"] >= N_RECORDS - 10


def test_sort_and_paging(dataset, argilla_server):
    by_n_desc = {
        "sort": [{"scope": {"entity": "metadata", "metadata_property": "n"}, "order": "desc"}]
    }
    first = _search(argilla_server, dataset, by_n_desc, limit=5)
    assert _ids(first) == [f"rec-{i:04d}" for i in range(999, 994, -1)]
    assert first["total"] == N_RECORDS
    page = _search(argilla_server, dataset, by_n_desc, limit=5, offset=995)
    assert _ids(page) == [f"rec-{i:04d}" for i in range(4, -1, -1)]
    by_score = {
        "query": {"text": {"q": "cats"}},
        "sort": [
            {
                "scope": {"entity": "suggestion", "question": "topic", "property": "score"},
                "order": "desc",
            },
            {"scope": {"entity": "record", "property": "inserted_at"}, "order": "asc"},
        ],
    }
    result = _search(argilla_server, dataset, by_score, limit=3)
    assert _ids(result) == ["rec-0009", "rec-0039", "rec-0069"]
    assert result["total"] == 334


def test_similarity_search(dataset, argilla_server):
    near = list(
        dataset.records(
            query=rg.Query(similar=rg.Similar(name="emb", value=[1.0, 0.0, 0.0])), limit=3
        )
    )
    assert {r.id for r, _score in near[:3]} == {"rec-0000", "rec-0001", "rec-0999"}
    body = {
        "query": {"vector": {"name": "emb", "value": [-1.0, 0.0, 0.0], "order": "least_similar"}}
    }
    least = _search(argilla_server, dataset, body, limit=1)
    assert _ids(least) == ["rec-0000"]
    filtered = {
        "query": {"vector": {"name": "emb", "value": [1.0, 0.0, 0.0]}},
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "metadata", "metadata_property": "source"},
                    "values": ["coco"],
                }
            ]
        },
    }
    assert _ids(_search(argilla_server, dataset, filtered, limit=2)) == ["rec-0001", "rec-0997"]


def test_metadata_metrics(dataset, argilla_server):
    with argilla_server.http() as http:
        terms = http.get(
            f"/api/v1/metadata-properties/{dataset.settings.metadata['source'].id}/metrics"
        ).json()
        ints = http.get(
            f"/api/v1/metadata-properties/{dataset.settings.metadata['n'].id}/metrics"
        ).json()
        floats = http.get(
            f"/api/v1/metadata-properties/{dataset.settings.metadata['x'].id}/metrics"
        ).json()
    assert terms["total"] == N_RECORDS
    assert sorted((v["term"], v["count"]) for v in terms["values"]) == sorted(
        (s, 250) for s in SOURCES
    )
    assert (ints["min"], ints["max"]) == (0, 999)
    assert floats["min"] == 0.0 and floats["max"] == pytest.approx(99.9)


def test_two_annotators_progress_and_delete(own_dataset, argilla_server):
    dataset = own_dataset
    alice = argilla_server.create_annotator(f"alice-{uuid.uuid4().hex[:6]}")
    bob = argilla_server.create_annotator(f"bob-{uuid.uuid4().hex[:6]}")
    pending = {
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
    alice_view = _search(
        argilla_server, dataset, pending, api_key=alice["api_key"], me=True, limit=5
    )
    bob_view = _search(argilla_server, dataset, pending, api_key=bob["api_key"], me=True, limit=5)
    assert alice_view["total"] == bob_view["total"] == N_RECORDS
    assert _ids(alice_view) != _ids(bob_view)  # per-user order, as with ES random_score

    answered = {}
    for who, view, status in ((alice, alice_view, "submitted"), (bob, bob_view, "discarded")):
        with argilla_server.http(who["api_key"]) as http:
            for item in view["items"][:3]:
                values = (
                    {"quality": {"value": 4}, "topic": {"value": "cats"}}
                    if status == "submitted"
                    else None
                )
                body = {"status": status, **({"values": values} if values else {})}
                r = http.post(f"/api/v1/records/{item['record']['id']}/responses", json=body)
                assert r.status_code == 201, r.text
        answered[who["username"]] = {item["record"]["external_id"] for item in view["items"][:3]}

    alice_after = _search(
        argilla_server, dataset, pending, api_key=alice["api_key"], me=True, limit=1000
    )
    assert alice_after["total"] == N_RECORDS - 3
    assert not answered[alice["username"]] & set(_ids(alice_after))
    assert answered[bob["username"]] <= set(_ids(alice_after))  # bob's answers do not hide records
    submitted = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "response", "property": "status"},
                    "values": ["submitted"],
                }
            ]
        }
    }
    assert (
        set(_ids(_search(argilla_server, dataset, submitted, api_key=alice["api_key"], me=True)))
        == answered[alice["username"]]
    )
    rated = {
        "filters": {
            "and": [
                {"type": "range", "scope": {"entity": "response", "question": "quality"}, "ge": 4}
            ]
        }
    }
    assert set(_ids(_search(argilla_server, dataset, rated))) == answered[alice["username"]]

    with argilla_server.http(alice["api_key"]) as http:
        mine = http.get(f"/api/v1/me/datasets/{dataset.id}/metrics").json()["responses"]
    assert (mine["submitted"], mine["pending"]) == (3, N_RECORDS - 3)
    progress = dataset.progress()
    assert (progress["total"], progress["completed"], progress["pending"]) == (
        N_RECORDS,
        3,
        N_RECORDS - 3,
    )
    completed = rg.Query(filter=rg.Filter(("status", "==", "completed")))
    assert {r.id for r in dataset.records(query=completed)} == answered[alice["username"]]
    back = {r.id: r for r in dataset.records(query=completed, with_responses=True)}
    assert all(r.responses["quality"][0].value == 4 for r in back.values())

    doomed = [r for r in dataset.records(query=rg.Query(query="zebra"))]
    dataset.records.delete(doomed)
    assert _search(argilla_server, dataset, {"query": {"text": {"q": "zebra"}}})["total"] == 0
    assert dataset.progress()["total"] == N_RECORDS - 10
    assert _search(argilla_server, dataset, {})["total"] == N_RECORDS - 10


def test_delete_dataset(client, argilla_server):
    settings = rg.Settings(fields=[rg.TextField("text")], questions=[rg.TextQuestion("q")])
    ds = rg.Dataset(
        name=f"gone-{uuid.uuid4().hex[:8]}",
        workspace=argilla_server.workspace,
        settings=settings,
        client=client,
    ).create()
    ds.records.log([{"text": "short lived"}])
    assert _search(argilla_server, ds, {"query": {"text": {"q": "lived"}}})["total"] == 1
    dataset_id = ds.id
    ds.delete()
    with argilla_server.http() as http:
        assert http.get(f"/api/v1/datasets/{dataset_id}").status_code == 404
