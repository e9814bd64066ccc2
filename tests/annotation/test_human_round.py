"""The human round loses nothing and closes the loop, against the real local Argilla.

Three annotators (a fourth never answers) give every kind of answer through the REST API, as
Argilla's UI does: ratings, labels, one-sided optional multi-labels, comments, harmful, a
corrected answer, corrected weights, conflicting weights and a draft. Pull keeps every answer
in ``responses.jsonl`` under pseudonymous ids, resolves the agreed corrections and sends the
conflicting ones back; publish applies the corrections with their previous values, keeps the
harmful item out whatever its verdict, carries ``annotations/responses.jsonl``, and the card
and report count coverage, verdicts, vetoes and edits.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import uuid
from pathlib import Path

import httpx
import pytest
from datasets import load_dataset

from annotation.annotate_cli import main as annotate_main
from annotation.client import connect, find_dataset, iter_raw_records
from annotation.images import url_builder
from annotation.pull import pseudonym
from annotation.push import push
from annotation.rubric import load_rubric
from annotation.settings import dataset_name
from pipelines.publish.cli import main as publish_main
from schemas.buildio import read_records

IMAGE_BASE = "http://127.0.0.1:9"  # never fetched: the HTML only names the URLs


def _run(main, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _respond(url: str, user: dict, record_id: str, values: dict, status: str = "submitted"):
    body = {"status": status, "values": {k: {"value": v} for k, v in values.items()}}
    with httpx.Client(base_url=url, headers={"X-Argilla-Api-Key": user["api_key"]}) as http:
        r = http.post(f"/api/v1/records/{record_id}/responses", json=body)
    assert r.status_code == 201, r.text


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _base(rubric, record: dict, verdict: str) -> dict:
    """A complete response to ``record``'s required questions, with ``verdict``."""
    out = {}
    for q in rubric.for_category(record["category"]):
        if q.taxonomy:
            out[q.name] = record[q.taxonomy]
        elif q.name == rubric.verdict_question:
            out[q.name] = verdict
        elif q.name == "harmful":
            out[q.name] = "none"
        elif q.required:
            out[q.name] = q.values[-2] if q.kind == "rating" else q.labels[0]
    return out


def _pick(records: list[dict]) -> dict[str, dict]:
    msr = [r for r in records if r["category"] == "MSR"]
    text_msr = next(r for r in msr if r["answer_type"] == "text" and not r["options"])
    ifs = [r for r in records if r["category"] == "IF"]
    sa = [r for r in records if r["category"] == "SA"]
    pbl = [r for r in records if r["category"] == "PBL"]
    return {
        "answer": text_msr,  # both fix with the same corrected answer: applied
        "weights": ifs[0],  # both fix with the same weights: applied
        "conflict": ifs[1],  # different weights: adjudication (needs_edit)
        "if_accept": ifs[2],  # accepted, one-sided optional labels
        "harmful": sa[0],  # accepted, one annotator says harmful: vetoed
        "sa_accept": sa[1],
        "subfield": pbl[0],  # a field/subfield fix (PBL: a category with one item judged)
    }


def _weights(record: dict, shift: int = 0) -> str:
    n = len(record["instruction"]["components"])
    current = [c["weight"] for c in record["instruction"]["components"]]
    for first in range(10 - (n - 1), 0, -1):
        rest = 10 - first
        cand = [first] + [rest // (n - 1) + (1 if i < rest % (n - 1) else 0) for i in range(n - 1)]
        if cand != current and min(cand) >= 1:
            if shift == 0:
                return "/".join(map(str, cand))
            shift -= 1
    raise AssertionError("no other weights")


@pytest.fixture(scope="module")
def round_(env, sample_build, tmp_path_factory):
    """One round pushed, answered, pulled and published; returns what the tests check."""
    rubric = load_rubric()
    client = connect(env.url, env.api_key)
    records = list(read_records(str(sample_build)))
    items = _pick(records)
    name = f"hr-{uuid.uuid4().hex[:6]}"
    push(client, list(items.values()), name, rubric, url_builder(IMAGE_BASE),
         workspace=env.workspace)  # fmt: skip
    argilla_id = {}
    for category in ("SA", "PBL", "MSR", "IF"):
        ds = find_dataset(client, dataset_name(name, category), env.workspace)
        argilla_id.update({i["external_id"]: i["id"] for i in iter_raw_records(client, ds.id)})
    a, b, c, idle = (env.create_annotator(f"hr-{x}-{uuid.uuid4().hex[:6]}") for x in "abcd")
    given: dict[tuple[str, str], dict] = {}  # (record id, username) -> values sent

    def answer(user: dict, key: str, verdict: str, status: str = "submitted", **extra) -> None:
        record = items[key]
        values = {**_base(rubric, record, verdict), **extra}
        _respond(env.url, user, argilla_id[record["id"]], values, status)
        given[(record["id"], user["username"])] = (values, status)

    r = items
    answer(a, "answer", "fix", corrected_answer="38 apples", comment="the count is 38",
           irrelevant_images=["image_1"])  # fmt: skip
    answer(b, "answer", "fix", corrected_answer="38 apples\n", harmful="sensitive")
    w = _weights(r["weights"])
    answer(a, "weights", "fix", corrected_weights=w, weights_fit="no",
           unverifiable_checks=["check_2"], checks_verifiable="some")  # fmt: skip
    answer(b, "weights", "fix", corrected_weights=w.replace("/", " / "), weights_fit="no",
           unanswerable_subinstructions=["sub_1"])  # fmt: skip
    answer(a, "conflict", "fix", corrected_weights=_weights(r["conflict"]))
    answer(b, "conflict", "fix", corrected_weights=_weights(r["conflict"], 1))
    answer(a, "if_accept", "accept", unverifiable_checks=["check_1"])  # b ticks nothing
    answer(b, "if_accept", "accept")
    answer(a, "harmful", "accept", harmful="harmful", comment="violent")
    answer(b, "harmful", "accept")
    answer(a, "sa_accept", "accept")
    answer(b, "sa_accept", "accept", irrelevant_images=["image_2"])
    sub = next(
        s for s in ("General Education", "Science Education") if s != r["subfield"]["subfield"]
    )
    answer(a, "subfield", "fix", correct_subfield=sub)
    answer(b, "subfield", "fix", correct_subfield=sub)
    answer(c, "sa_accept", "reject", status="draft", comment="half done")

    rc, status_json, err = _run(
        annotate_main, ["status", "--dataset", name, "--workspace", env.workspace, "--json"]
    )
    assert rc == 0, err
    out = tmp_path_factory.mktemp("human-round") / "annotations"
    argv = ["pull", "--dataset", name, "--workspace", env.workspace, "--output", str(out)]
    rc, _, err = _run(annotate_main, [*argv, "--bootstrap", "50"])
    assert rc == 0, err
    release = out.parent / "release"
    argv = ["--build", str(sample_build), "--annotations", str(out), "--output", str(release)]
    rc, _, err = _run(publish_main, [*argv, "--version", "0.3.0"])
    assert rc == 0, err
    return {
        "items": items, "given": given, "users": (a, b, c, idle), "status": json.loads(status_json),
        "out": out, "release": release, "sub": sub, "weights": w, "env": env,
    }  # fmt: skip


def test_every_answer_is_in_responses_jsonl(round_):
    out, given = round_["out"], round_["given"]
    lines = _jsonl(out / "responses.jsonl")
    keys = {"record_id", "dataset", "annotator", "question", "value", "status", "updated_at"}
    assert all(keys <= set(line) for line in lines)
    ids = {line["annotator"] for line in lines}
    assert len(ids) == 3 and all(re.fullmatch(r"ann-[0-9a-f]{12}", i) for i in ids)
    text = (out / "responses.jsonl").read_text()
    for user in round_["users"]:
        assert user["username"] not in text and user["api_key"] not in text
    by_key = {(x["record_id"], x["annotator"], x["question"]): x for x in lines}
    # the ids are HMAC-SHA256 of the Argilla user id with the pull folder's salt
    salt = bytes.fromhex((out / "annotator_salt").read_text().strip())
    pseudo = {u["username"]: pseudonym(str(u["id"]), salt) for u in round_["users"]}
    assert ids == {pseudo[u["username"]] for u in round_["users"][:3]}
    for (rid, username), (values, status) in given.items():
        for question, value in values.items():
            line = by_key[(rid, pseudo[username], question)]
            assert line["value"] == value and line["status"] == status, (rid, question)
            assert line["updated_at"] and line["dataset"].startswith("hr-")
    draft = [x for x in lines if x["status"] == "draft"]
    assert {x["question"]: x["value"] for x in draft}["comment"] == "half done"
    round_["pseudo"] = pseudo  # for the next tests, when run in order (each recomputes)


def _pseudo(round_) -> dict[str, str]:
    if "pseudo" not in round_:
        test_every_answer_is_in_responses_jsonl(round_)
    return round_["pseudo"]


def test_decisions_corrections_veto_and_agreement(round_):
    out, items = round_["out"], round_["items"]
    pseudo = _pseudo(round_)
    a, b = (pseudo[u["username"]] for u in round_["users"][:2])
    decisions = {d["id"]: d for d in _jsonl(out / "decisions.jsonl")}
    answer = decisions[items["answer"]["id"]]
    assert answer["corrections"] == {"answer": "38 apples"}
    assert answer["corrected_by"] == {"answer": sorted([a, b])} and answer["needs_edit"] == []
    weights = decisions[items["weights"]["id"]]
    assert weights["corrections"] == {"weights": [int(x) for x in round_["weights"].split("/")]}
    conflict = decisions[items["conflict"]["id"]]
    assert conflict["needs_edit"] == ["conflicting_corrections"] and not conflict["corrections"]
    edits = {n["id"]: n for n in _jsonl(out / "needs_edit.jsonl")}
    assert set(edits) == {items["conflict"]["id"]}
    assert len(edits[items["conflict"]["id"]]["corrections"]) == 2  # both shown to round 2
    harmful = decisions[items["harmful"]["id"]]
    assert harmful["verdict"] == "accept" and harmful["veto"]["by"] == [a]
    assert "veto" not in answer  # "sensitive" is not a veto
    agreement = json.loads((out / "agreement.json").read_text())
    assert agreement["vetoed"] == 1
    assert agreement["responses"]["draft"] == len(load_rubric().categories["SA"])  # per question
    # one-sided optional labels count: IF checks ticked by one annotator of each pair
    checks = agreement["questions"]["unverifiable_checks"]
    assert checks["pairable_units"] == 3 and checks["units"] == 3
    images = agreement["questions"]["irrelevant_images"]
    assert images["pairable_units"] == 4  # SA x2, MSR, PBL: each with one side empty
    # PBL: one item judged by two annotators, so no alpha for it
    assert agreement["questions"]["verdict"]["by_category"]["PBL"]["alpha"] is None
    assert agreement["questions"]["verdict"]["by_category"]["PBL"]["pairable_units"] == 1
    salt = out / "annotator_salt"
    assert salt.stat().st_mode & 0o077 == 0


def test_status_lists_every_annotator(round_):
    status = round_["status"]["by_annotator"]
    a, _, c, idle = (u["username"] for u in round_["users"])
    assert status[idle] == {}  # an annotator with no response is listed
    assert status[c] == {"draft": 1} and status[a] == {"submitted": 7}


def test_release_applies_corrections_with_previous_values(round_, tmp_path):
    release, items = round_["release"], round_["items"]
    pseudo = _pseudo(round_)
    pair = sorted(pseudo[u["username"]] for u in round_["users"][:2])
    rows = load_dataset("parquet", data_dir=str(release / "data"), cache_dir=str(tmp_path))["test"]
    published = {r["id"]: r for r in rows}
    assert items["harmful"]["id"] not in published  # accepted, but vetoed
    assert items["conflict"]["id"] not in published  # its edit is not resolved
    msr = published[items["answer"]["id"]]
    assert msr["answer"][0]["text"] == "38 apples" and msr["gt_answer"][0]["text"] == "38 apples"
    assert json.loads(msr["answer_value"]) == "38 apples"
    old = items["answer"]
    (edit,) = msr["annotation"]["edits"]
    assert edit["target"] == "answer" and edit["by"] == pair
    before = json.loads(edit["before"])
    assert before == {
        "answer": [old["answer"][0]["text"]],
        "gt_answer": old["gt_answer"][0]["text"],
        "answer_value": old["answer_value"],
    }
    assert json.loads(edit["after"])["answer"] == ["38 apples"]
    assert msr["annotation"]["corrected"] == ["answer"]
    ifr = published[items["weights"]["id"]]
    new = [int(x) for x in round_["weights"].split("/")]
    assert [c["weight"] for c in ifr["instruction"]["components"]] == new
    (edit,) = ifr["annotation"]["edits"]
    old_if = items["weights"]
    before, after = json.loads(edit["before"]), json.loads(edit["after"])
    assert before["weights"] == [c["weight"] for c in old_if["instruction"]["components"]]
    assert after["weights"] == new and edit["by"] == pair
    # the reference's checklist states the corrected weights too, and the edit keeps the old text
    checklist = [ln for ln in ifr["gt_answer"][0]["text"].splitlines() if "/10):" in ln]
    assert [int(ln.split("(")[1].split("/")[0]) for ln in checklist] == new
    assert before["gt_answer"] == old_if["gt_answer"][0]["text"]
    assert after["gt_answer"] == ifr["gt_answer"][0]["text"]
    pbl = published[items["subfield"]["id"]]
    assert pbl["subfield"] == round_["sub"]
    assert pbl["annotation"]["edits"] == [
        {
            "target": "subfield",
            "before": json.dumps(items["subfield"]["subfield"]),
            "after": json.dumps(round_["sub"]),
            "by": pair,
        }
    ]
    dropped = _jsonl(release / "dropped.jsonl")
    assert {d["id"] for d in dropped if d["reason"] == "harmful_veto"} == {items["harmful"]["id"]}
    # every answer travels with the release, listed in the manifest
    assert (release / "annotations" / "responses.jsonl").read_bytes() == (
        round_["out"] / "responses.jsonl"
    ).read_bytes()
    manifest = json.loads((release / "manifest.json").read_text())
    assert "annotations/responses.jsonl" in manifest["files"]
    assert "annotator_salt" not in json.dumps(manifest)


def test_card_and_report_count_the_round(round_):
    release = round_["release"]
    card = (release / "README.md").read_text().replace("\\_", "_")
    manifest = json.loads((release / "manifest.json").read_text())
    n_dropped = len((release / "dropped.jsonl").read_text().splitlines())
    n_build = n_dropped + manifest["publish"]["records"]
    published = json.loads((release / "manifest.json").read_text())["publish"]["records"]
    assert f"Protocol: 5 of {published} published items were judged by human annotators, " in card
    assert "each by 2 annotators" in card
    assert "1 vetoed as harmful" in card and "annotations/responses.jsonl" in card
    assert "| total |" in card and "answer 1" in card and "weights 1" in card
    assert "| PBL | n/a |" not in card  # the table has the overall column first
    verdict_row = next(x for x in card.splitlines() if x.startswith("| verdict |"))
    cells = [c.strip() for c in verdict_row.strip("|").split("|")]
    header = next(x for x in card.splitlines() if x.startswith("| question | level |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert cells[columns.index("α PBL")] == "n/a"
    assert n_build > published
    report = (release / "report" / "index.html").read_text()
    assert "Human annotation: coverage, verdicts, edits" in report and "n/a" in report


def test_publish_warns_when_no_decision_matches_the_build(sample_build, tmp_path):
    ann = tmp_path / "ann"
    ann.mkdir()
    lines = [{"id": f"SA_other_build_{i}", "verdict": "accept", "n_responses": 2} for i in (1, 2)]
    (ann / "decisions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    release = tmp_path / "release"
    argv = ["--build", str(sample_build), "--annotations", str(ann), "--output", str(release)]
    rc, _, err = _run(publish_main, [*argv, "--version", "0.1.0"])
    assert rc == 0
    assert "WARNING" in err and "none of the 2 decisions" in err
    report = (release / "report" / "index.html").read_text()
    assert 'class="warn">Warning: none of the 2 decisions' in report
    assert "**Warning: none of the 2 decisions" in (release / "README.md").read_text()
