"""One annotation round against the real local Argilla (the session's ``argilla_server``).

Build the sample -> push (interrupted after one batch, then run again: no duplicates) -> two
annotators submit through the REST API (a disagreement, rejects, a correction, a pending
record, a discarded one) -> status -> pull: decisions, hand-computed alpha -> publish takes
the decisions (rejected records left out, the correction applied). The API key never shows
in any output.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from annotation.annotate_cli import main as annotate_main
from annotation.client import connect, find_dataset, iter_raw_records
from annotation.images import stop_image_server, url_builder
from annotation.pull import pseudonym
from annotation.push import push
from annotation.rubric import load_rubric
from annotation.settings import TEMPLATE, build_settings, dataset_name
from pipelines.publish.cli import main as publish_main
from schemas.buildio import read_records

ROUND = f"e2e-{uuid.uuid4().hex[:6]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def build(sample_build) -> Path:
    """The session's sample build (tests/conftest.py), read only."""
    return sample_build


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("annotate-images")
    yield root, _free_port()
    stop_image_server(root)


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def pushed(env, build, images):
    """Push SA+PBL with an exception after the first batch, then the whole build by the CLI."""
    root, port = images
    client = connect(env.url, env.api_key)
    rubric = load_rubric()
    records = list(read_records(str(build)))
    subset = [r for r in records if r["category"] in ("SA", "PBL")]

    def stop_after_first(category, sent, total):
        raise Interrupted(f"{category}: {sent}/{total}")

    with pytest.raises(Interrupted):
        push(
            client, subset, ROUND, rubric, url_builder(f"http://127.0.0.1:{port}"),
            workspace=env.workspace, batch_size=5, on_batch=stop_after_first,
        )  # fmt: skip
    first = find_dataset(client, dataset_name(ROUND, "PBL"), env.workspace)
    assert len(list(iter_raw_records(client, first.id))) == 5
    argv = ["push", "--build", str(build), "--dataset", ROUND, "--workspace", env.workspace]
    argv += ["--image-root", str(root), "--image-port", str(port), "--batch-size", "40"]
    # the resumed push, here so that every test of the module finds the round complete
    # whichever runs first, or alone
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert annotate_main(argv) == 0
    report = json.loads(out.getvalue().split("\n", 1)[1])  # after the image-server line
    return {
        "client": client,
        "records": records,
        "rubric": rubric,
        "argv": argv,
        "resumed": report,
    }


def _ids_in_argilla(client, workspace: str) -> dict[str, list[str]]:
    out = {}
    for category in ("SA", "PBL", "MSR", "IF"):
        ds = find_dataset(client, dataset_name(ROUND, category), workspace)
        out[category] = [item["external_id"] for item in iter_raw_records(client, ds.id)]
    return out


def test_settings_follow_the_rubric(env):
    rubric = load_rubric()
    settings = build_settings(rubric, "IF", connect(env.url, env.api_key), overlap=3)
    assert [q.name for q in settings.questions] == list(rubric.categories["IF"])
    kinds = {q.name: type(q).__name__ for q in settings.questions}
    assert kinds["answer_quality"] == "RatingQuestion" and kinds["verdict"] == "LabelQuestion"
    assert kinds["unanswerable_subinstructions"] == "MultiLabelQuestion"
    assert kinds["comment"] == "TextQuestion"
    assert settings.distribution.min_submitted == 3
    assert [f.name for f in settings.fields] == ["item"] and settings.fields[0].template == TEMPLATE
    meta = {m.name for m in settings.metadata}
    assert {"category", "field", "subfield", "source", "clip_min_score"} <= meta


def test_resumed_push_leaves_no_duplicates(pushed, env, capsys):
    report = pushed["resumed"]
    by_cat = Counter(r["category"] for r in pushed["records"])
    assert report["selected"] == dict(by_cat)
    assert report["unchanged"] == {"PBL": 5}  # the batch sent before the interruption
    assert report["pushed"] == {**dict(by_cat), "PBL": by_cat["PBL"] - 5}
    ids = _ids_in_argilla(pushed["client"], env.workspace)
    for category, expected in by_cat.items():
        assert len(ids[category]) == len(set(ids[category])) == expected
        want = {r["id"] for r in pushed["records"] if r["category"] == category}
        assert set(ids[category]) == want
    assert annotate_main(pushed["argv"]) == 0  # a third push sends nothing
    again = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert again["pushed"] == {} and again["batches"] == 0
    assert again["unchanged"] == dict(by_cat)
    # the annotator's browser gets the images by URL from the read-only loopback server
    sa = find_dataset(pushed["client"], dataset_name(ROUND, "SA"), env.workspace)
    html = next(iter_raw_records(pushed["client"], sa.id))["fields"]["item"]["html"]
    url = html.split('<img src="', 1)[1].split('"', 1)[0]
    assert url.startswith("http://127.0.0.1:") and "base64" not in html
    assert httpx.get(url).status_code == 200


def _answer(url: str, user: dict, record_id: str, status: str, values: dict | None = None):
    """Submit (or discard) a response as ``user`` through the REST API, as the UI does."""
    body = {"status": status}
    if values:
        body["values"] = {k: {"value": v} for k, v in values.items()}
    with httpx.Client(base_url=url, headers={"X-Argilla-Api-Key": user["api_key"]}) as http:
        r = http.post(f"/api/v1/records/{record_id}/responses", json=body)
    assert r.status_code == 201, r.text


def test_annotate_pull_and_publish(pushed, env, build, tmp_path, capsys, caplog):
    client = pushed["client"]
    ds = find_dataset(client, dataset_name(ROUND, "SA"), env.workspace)
    items = sorted(iter_raw_records(client, ds.id), key=lambda i: i["external_id"])
    sa = [(i["id"], i["external_id"], i["metadata"]["subfield"]) for i in items]
    assert len(sa) >= 7
    a = env.create_annotator(f"ann-a-{uuid.uuid4().hex[:6]}")
    b = env.create_annotator(f"ann-b-{uuid.uuid4().hex[:6]}")
    other = next(s for s in ("Family and Friends", "Everyday Life") if s != sa[3][2])

    def values(verdict: str, score: int, subfield: str) -> dict:
        return {
            "question_clarity": 5, "answer_quality": score, "image_relevance": 5, "coherence": 5,
            "correct_field": "Literature", "correct_subfield": subfield, "harmful": "none",
            "verdict": verdict,
        }  # fmt: skip

    plan = [  # (A's verdict, A's score), (B's verdict, B's score)
        (("accept", 5), ("accept", 5)),  # 0: accept
        (("accept", 4), ("reject", 1)),  # 1: tie -> reject
        (("reject", 0), ("reject", 1)),  # 2: reject
        (("fix", 3), ("fix", 4)),  # 3: fix, both correct the subfield
        (("accept", 6), ("fix", 5)),  # 4: tie -> fix, but nothing to apply: needs_edit
    ]
    for (rid, _, subfield), (va, vb) in zip(sa, plan):
        fixed = other if rid == sa[3][0] else subfield
        _answer(env.url, a, rid, "submitted", values(va[0], va[1], fixed))
        _answer(env.url, b, rid, "submitted", values(vb[0], vb[1], fixed))
    _answer(
        env.url, a, sa[5][0], "submitted", values("accept", 6, sa[5][2])
    )  # one response: pending
    _answer(env.url, b, sa[6][0], "discarded")

    assert (
        annotate_main(["status", "--dataset", ROUND, "--workspace", env.workspace, "--json"]) == 0
    )
    status = json.loads(capsys.readouterr().out)
    assert status["by_annotator"][a["username"]] == {"submitted": 6}
    assert status["by_annotator"][b["username"]] == {"discarded": 1, "submitted": 5}
    assert status["by_category"]["SA"]["complete"] == 5
    assert status["by_category"]["IF"] == {"complete": 0, "records": 79, "responses_submitted": 0}
    assert status["by_field"]["SA/Literature"]["complete"] == 5
    assert annotate_main(["status", "--dataset", ROUND, "--workspace", env.workspace]) == 0
    assert "records complete" in capsys.readouterr().out

    out = tmp_path / "annotations"
    argv = ["pull", "--dataset", ROUND, "--workspace", env.workspace, "--output", str(out)]
    assert annotate_main([*argv, "--bootstrap", "200"]) == 0
    decisions = {
        d["id"]: d for d in map(json.loads, (out / "decisions.jsonl").read_text().splitlines())
    }
    ids = [s[1] for s in sa]
    expected = [
        (ids[0], "accept", {}, 5.0, []),
        (ids[1], "reject", {}, 2.5, []),
        (ids[2], "reject", {}, 0.5, []),
        (ids[3], "fix", {"subfield": other}, 3.5, []),
        (ids[4], "fix", {}, 5.5, ["fix_without_correction", "verdict_tie"]),
    ]
    assert set(decisions) == set(ids[:5])  # ids[5] has one response: pending
    salt = bytes.fromhex((out / "annotator_salt").read_text().strip())
    pair = sorted(pseudonym(str(u["id"]), salt) for u in (a, b))
    assert decisions[ids[3]].pop("corrected_by") == {"subfield": pair}  # who corrected it
    for rid, verdict, corrections, score, why in expected:
        assert decisions[rid] == {
            "id": rid, "verdict": verdict, "corrections": corrections, "mean_score": score,
            "n_responses": 2, "comments": [], "needs_edit": why,
        }  # fmt: skip
    needs_edit = [json.loads(x) for x in (out / "needs_edit.jsonl").read_text().splitlines()]
    assert [n["id"] for n in needs_edit] == [ids[4]]
    agreement = json.loads((out / "agreement.json").read_text())
    # verdict units (acc,acc) (acc,rej) (rej,rej) (fix,fix) (acc,fix): alpha = 5/11 by hand
    # (see tests/annotation/test_agreement.py::test_nominal_alpha_by_hand for the derivation)
    assert agreement["questions"]["verdict"]["alpha"] == pytest.approx(5 / 11, abs=1e-4)
    assert agreement["questions"]["verdict"]["percent_agreement"] == pytest.approx(0.6)
    assert agreement["questions"]["answer_quality"]["level"] == "ordinal"
    assert agreement["records"] == {
        "in_argilla": len(pushed["records"]), "decided": 5,
        "pending": len(pushed["records"]) - 5, "by_category": {"SA": 5},
    }  # fmt: skip
    assert agreement["verdicts"] == {"accept": 1, "fix": 2, "reject": 2}
    assert agreement["annotators"] == 2 and agreement["protocol"].startswith("Annotators judge")

    release = tmp_path / "release"
    publish_argv = ["--build", str(build), "--output", str(release), "--version", "0.1.0"]
    assert publish_main([*publish_argv, "--annotations", str(out)]) == 0
    rows = pq.read_table(release / "data", columns=["id", "subfield"]).to_pylist()
    published = {r["id"]: r["subfield"] for r in rows}
    assert ids[1] not in published and ids[2] not in published  # rejected
    assert ids[4] not in published  # needs an edit
    assert published[ids[3]] == other  # corrected
    assert {ids[0], ids[5]} <= set(published)
    assert len(published) == len(pushed["records"]) - 3
    dropped = [json.loads(line) for line in (release / "dropped.jsonl").read_text().splitlines()]
    rejected = {d["id"] for d in dropped if d["reason"] == "annotation_rejected"}
    assert rejected == {ids[1], ids[2]}
    assert {d["id"] for d in dropped if d["reason"] == "needs_edit"} == {ids[4]}

    # the key shows nowhere: console, logs, files written
    captured = capsys.readouterr()
    texts = [captured.out, captured.err, caplog.text]
    texts += [p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()]
    image_root = pushed["argv"][pushed["argv"].index("--image-root") + 1]
    texts += [p.read_text(errors="replace") for p in Path(image_root).glob("*.log")]
    assert all(env.api_key not in text for text in texts)
