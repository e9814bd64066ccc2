"""Audit flags routed to annotators and back, against the real local Argilla.

A copy of the sample build gets validity-audit flags on two records of each category (one
with a flag whose reason holds markup, one with two flags), the way the audit stages write
them (``schemas.audit``). ``mmloom annotate push --priority audit --sample stratified`` must
send every flagged record whatever the sample size; annotators, reading their queue through
the same search request Argilla's UI sends for the link push prints, get the flagged items
first; the item shows the flags escaped; two annotators confirm or clear each flag through
the REST API; ``pull`` records each flag's outcome; ``publish`` counts flagged, reviewed,
confirmed, cleared, split and removed flags per category in the card and the report, and the
rows read back with ``datasets`` keep the flags of the items the verdict kept.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
import uuid
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from annotation.annotate_cli import main as annotate_main
from annotation.client import connect, find_dataset
from annotation.rubric import load_rubric
from annotation.settings import dataset_name
from pipelines.publish.cli import main as publish_main
from schemas.audit import add_flags, flag
from schemas.buildio import RECORDS_DIR, read_records, write_manifest
from schemas.parquet import RECORD_SCHEMA, to_row
from tests.annotation.test_human_round import IMAGE_BASE, _base, _jsonl, _respond, _run

HOSTILE = "</script><script>window.top.__pwned=1</script>"
CATEGORIES = ("SA", "PBL", "MSR", "IF")


def _flags(kind: str) -> list[dict]:
    if kind == "one":
        reason = f"The reference answer is the longest option {HOSTILE}"
        return [flag("longest_option", "audit_answer_patterns", reason, 0.93, 0.8)]
    return [
        flag("answer_in_question", "audit_answer_patterns",
             "The reference answer's text appears in the question.", 1.0, 1.0),
        flag("blind_answerable", "audit_blind",
             "A text-only model gives the reference answer without the images.", 0.71, 0.5),
    ]  # fmt: skip


def _flagged_build(sample_build: Path, out: Path) -> tuple[Path, dict[str, dict[str, str]]]:
    """A copy of the sample build whose first two records (by id) of each category carry
    flags, and no other record any; returns it and category -> {"one": id, "two": id}."""
    shutil.copytree(sample_build, out)
    records = sorted(read_records(str(out)), key=lambda r: r["id"])
    chosen: dict[str, dict[str, str]] = {}
    rows = []
    for r in records:
        r = dict(r, audit=None)  # these flags only (the sample's tiny blind LM raises its own)
        picks = chosen.setdefault(r["category"], {})
        kind = next((k for k in ("one", "two") if k not in picks), None)
        if kind is not None:
            picks[kind] = r["id"]
            r = add_flags(r, _flags(kind))
        else:
            r = add_flags(r, [])  # audited, nothing found
        rows.append(to_row(r))
    for path in (out / RECORDS_DIR).glob("*.parquet"):
        path.unlink()
    table = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
    pq.write_table(table, out / RECORDS_DIR / "records-00000-of-00001.parquet")
    write_manifest(str(out))
    return out, chosen


def _ui_search(url: str, api_key: str, dataset_id: str, link: str | None) -> list[dict]:
    """An annotator's queue as Argilla's UI asks for it in annotation mode: the pending
    records (response and record status), with the sort the link's ``sort`` parameter holds
    (``entity.name.order``, turned into the request's ``sort`` as the UI's JavaScript does)."""
    body: dict = {
        "query": {},
        "filters": {
            "and": [
                {"type": "terms", "scope": {"entity": "response", "property": "status"},
                 "values": ["pending"]},
                {"type": "terms", "scope": {"entity": "record", "property": "status"},
                 "values": ["pending"]},
            ]
        },
    }  # fmt: skip
    if link is not None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
        body["sort"] = []
        for item in query["sort"][0].split("~"):
            entity, name, order = item.split(".")
            assert entity == "metadata"
            body["sort"].append(
                {"scope": {"entity": entity, "metadata_property": name}, "order": order}
            )
    with httpx.Client(base_url=url, headers={"X-Argilla-Api-Key": api_key}, timeout=60) as http:
        r = http.post(
            f"/api/v1/me/datasets/{dataset_id}/records/search",
            params={"limit": 200},
            json=body,
        )
    assert r.status_code == 200, r.text
    return [item["record"] for item in r.json()["items"]]


@pytest.fixture(scope="module")
def round_(env, sample_build, tmp_path_factory):
    root = tmp_path_factory.mktemp("audit-round")
    build, chosen = _flagged_build(sample_build, root / "build")
    name = f"au-{uuid.uuid4().hex[:6]}"
    argv = ["push", "--build", str(build), "--dataset", name, "--workspace", env.workspace,
            "--sample", "stratified", "--per-cell", "3", "--priority", "audit",
            "--image-base", IMAGE_BASE]  # fmt: skip
    rc, out, err = _run(annotate_main, argv)
    assert rc == 0, err
    report = json.loads(out[: out.index("\n}\n") + 2])
    links = dict(re.findall(r"^  (SA|PBL|MSR|IF): (\S+)$", out, re.M))
    client = connect(env.url, env.api_key)
    datasets = {c: find_dataset(client, dataset_name(name, c), env.workspace) for c in CATEGORIES}
    a, b = (env.create_annotator(f"au-{x}-{uuid.uuid4().hex[:6]}") for x in "ab")
    queues = {
        c: {
            "sorted": _ui_search(env.url, a["api_key"], str(datasets[c].id), links.get(c)),
            "unsorted": _ui_search(env.url, a["api_key"], str(datasets[c].id), None),
        }
        for c in CATEGORIES
    }
    by_id = {r["id"]: r for r in read_records(str(build))}
    rubric = load_rubric()
    argilla_id = {r["external_id"]: r["id"] for q in queues.values() for r in q["unsorted"]}
    # one flag, both confirm and reject: confirmed, removed. Two flags: a confirms flag 1 and
    # b clears it (split), both clear flag 2 (cleared); accepted, kept.
    for picks in chosen.values():
        one, two = by_id[picks["one"]], by_id[picks["two"]]
        for user in (a, b):
            values = {**_base(rubric, one, "reject"), "audit_flags_hold": ["flag_1"]}
            _respond(env.url, user, argilla_id[one["id"]], values)
        _respond(env.url, a, argilla_id[two["id"]],
                 {**_base(rubric, two, "accept"), "audit_flags_hold": ["flag_1"]})  # fmt: skip
        _respond(env.url, b, argilla_id[two["id"]], _base(rubric, two, "accept"))
    pulled = root / "annotations"
    argv = ["pull", "--dataset", name, "--workspace", env.workspace, "--output", str(pulled)]
    rc, _, err = _run(annotate_main, [*argv, "--bootstrap", "20"])
    assert rc == 0, err
    release = root / "release"
    argv = ["--build", str(build), "--annotations", str(pulled), "--output", str(release)]
    rc, _, err = _run(publish_main, [*argv, "--version", "0.4.0"])
    assert rc == 0, err
    return {"report": report, "links": links, "queues": queues, "chosen": chosen,
            "pulled": pulled, "release": release, "build": build, "out": out}  # fmt: skip


def test_push_sends_every_flagged_record_and_prints_sorted_links(round_, env):
    report, chosen = round_["report"], round_["chosen"]
    assert report["flagged"] == {c: 2 for c in CATEGORIES}
    assert set(round_["links"]) == set(CATEGORIES)
    for link in round_["links"].values():
        assert link.startswith(env.url + "/dataset/")
        assert link.endswith("/annotation-mode?sort=metadata.audit_flags.desc")
    for c, picks in chosen.items():
        ids = {r["external_id"] for r in round_["queues"][c]["unsorted"]}
        assert set(picks.values()) <= ids  # whatever --per-cell 3 would have chosen
    assert "random order of their own" in round_["out"]


def test_annotators_get_flagged_items_first_through_the_link(round_):
    for c, picks in round_["chosen"].items():
        queue = round_["queues"][c]["sorted"]
        assert len(queue) == round_["report"]["selected"][c]  # every pending record, once
        # two flags before one flag, then the audited records with none
        assert [r["external_id"] for r in queue[:2]] == [picks["two"], picks["one"]]
        assert [r["metadata"]["audit_flags"] for r in queue] == sorted(
            (r["metadata"]["audit_flags"] for r in queue), reverse=True
        )
        assert all(r["metadata"]["audit_flags"] == 0 for r in queue[2:])
        assert queue[0]["metadata"]["audit_codes"] == ["answer_in_question", "blind_answerable"]


def test_the_item_shows_its_flags_escaped(round_):
    for c, picks in round_["chosen"].items():
        records = {r["external_id"]: r for r in round_["queues"][c]["unsorted"]}
        one = records[picks["one"]]["fields"]["item"]["html"]
        assert "Audit flags: evidence for you to check, not verdicts" in one
        assert "<b>flag 1</b> (longest option" in one
        assert "&lt;/script&gt;&lt;script&gt;window.top.__pwned=1" in one
        assert "<script" not in one.lower()
        two = records[picks["two"]]["fields"]["item"]["html"]
        assert "<b>flag 2</b> (blind answerable, raised by audit_blind)" in two
        unflagged = next(r for k, r in records.items() if k not in picks.values())
        assert "Audit flags" not in unflagged["fields"]["item"]["html"]


def test_pull_records_each_flags_outcome_and_every_answer(round_):
    decisions = {d["id"]: d for d in _jsonl(round_["pulled"] / "decisions.jsonl")}
    for picks in round_["chosen"].values():
        one = decisions[picks["one"]]["audit"]["flags"]
        assert [(f["code"], f["outcome"]) for f in one] == [("longest_option", "confirmed")]
        assert len(one[0]["confirmed_by"]) == 2 and one[0]["cleared_by"] == []
        two = decisions[picks["two"]]["audit"]["flags"]
        assert [(f["code"], f["outcome"]) for f in two] == [
            ("answer_in_question", "split"),
            ("blind_answerable", "cleared"),
        ]
    lines = [x for x in _jsonl(round_["pulled"] / "responses.jsonl")
             if x["question"] == "audit_flags_hold"]  # fmt: skip
    assert len(lines) == 4 * 2 * 2  # 4 categories x 2 records x 2 annotators
    assert sorted(json.dumps(x["value"]) for x in lines).count('["flag_1"]') == 4 * 3
    agreement = json.loads((round_["pulled"] / "agreement.json").read_text())
    assert agreement["audit"]["PBL"]["answer_in_question"] == {
        "reviewed": 1, "confirmed": 0, "cleared": 0, "split": 1
    }  # fmt: skip
    # the audit question's agreement counts the flagged records only
    assert agreement["questions"]["audit_flags_hold"]["units"] == 8


def test_card_report_and_rows_count_the_review(round_, tmp_path):
    release, chosen = round_["release"], round_["chosen"]
    card = (release / "README.md").read_text().replace("\\_", "_")
    assert "#### Validity-audit flags under human review" in card
    assert "Flags are evidence for review, not verdicts" in card
    n = {c: sum(1 for r in read_records(str(round_["build"])) if r["category"] == c)
         for c in CATEGORIES}  # fmt: skip
    assert all(v > 2 for v in n.values())
    rows = [line for line in card.splitlines() if line.startswith("| ")]
    # category | flag | flagged | reviewed | confirmed | cleared | split | removed
    for c in CATEGORIES:
        assert f"| {c} | longest_option | 1 | 1 | 1 | 0 | 0 | 1 |" in rows
        assert f"| {c} | answer_in_question | 1 | 1 | 0 | 0 | 1 | 0 |" in rows
        assert f"| {c} | blind_answerable | 1 | 1 | 0 | 1 | 0 | 0 |" in rows
    assert "| total |  | 12 | 12 | 4 | 4 | 4 | 4 |" in rows
    report = (release / "report" / "index.html").read_text()
    assert "<h2>Validity-audit flags under human review</h2>" in report
    assert (
        "<td>longest_option</td><td>1</td><td>1</td><td>1</td><td>0</td><td>0</td><td>1</td>"
        in report
    )
    data = load_dataset("parquet", data_dir=str(release / "data"), cache_dir=str(tmp_path))
    published = {r["id"]: r for r in data["test"]}
    for picks in chosen.values():
        assert picks["one"] not in published  # rejected: the verdict removed it
        kept = published[picks["two"]]
        audit = kept["audit"] if isinstance(kept["audit"], dict) else json.loads(kept["audit"])
        assert [f["code"] for f in audit["flags"]] == ["answer_in_question", "blind_answerable"]
        assert kept["annotation"]["verdict"] == "accept"
    dropped = {d["id"]: d for d in _jsonl(release / "dropped.jsonl")}
    assert all(dropped[p["one"]]["reason"] == "annotation_rejected" for p in chosen.values())


def test_a_dataset_made_before_audit_flags_gets_their_metadata(env):
    """A round whose datasets predate the audit metadata takes audited records: push adds
    ``audit_flags`` and ``audit_codes`` to the dataset (Argilla allows adding metadata
    properties to a dataset with records) and the records carry them."""
    import argilla as rg

    from annotation.images import url_builder
    from annotation.push import push
    from annotation.settings import build_settings
    from tests.annotation.test_audit_routing import _blind, _record

    client = connect(env.url, env.api_key)
    rubric = load_rubric()
    name = f"old-{uuid.uuid4().hex[:6]}"
    new = build_settings(rubric, "PBL", client, sizes={"image": 2, "sub": 0, "check": 0, "flag": 2})
    old = rg.Settings(
        guidelines=new.guidelines,
        fields=list(new.fields),
        questions=list(new.questions),
        metadata=[m for m in new.metadata if not m.name.startswith("audit_")],
        distribution=new.distribution,
        allow_extra_metadata=False,
    )
    rg.Dataset(name=dataset_name(name, "PBL"), workspace=env.workspace, settings=old,
               client=client).create()  # fmt: skip
    records = [_record("PBL_old_1"), add_flags(_record("PBL_old_2"), [_blind()])]
    push(client, records, name, rubric, url_builder(IMAGE_BASE), workspace=env.workspace)
    ds = find_dataset(client, dataset_name(name, "PBL"), env.workspace)
    assert {"audit_flags", "audit_codes"} <= {m.name for m in ds.settings.metadata}
    with httpx.Client(base_url=env.url, headers={"X-Argilla-Api-Key": env.api_key}) as http:
        items = http.get(f"/api/v1/datasets/{ds.id}/records").raise_for_status().json()["items"]
    meta = {i["external_id"]: i["metadata"] for i in items}
    assert "audit_flags" not in meta["PBL_old_1"]  # not audited
    assert meta["PBL_old_2"]["audit_flags"] == 1
    assert meta["PBL_old_2"]["audit_codes"] == ["blind_answerable"]
