"""Decisions that need an edit, the second round, and the README's steps against the real server.

Each test pushes its own round (a stratified sample of the session's sample build, images by
``--image-base``), so every test runs alone and in any order. Two annotators give a fix with
only a comment, an impossible field/subfield pair, an accept/fix tie, an accept and an applied
fix; pull writes ``needs_edit.jsonl`` and keeps the comments; a second push sends exactly the
needs_edit records to a new round with the comments shown (escaped); publish leaves them out
unless ``--include-needs-edit``, and ``--require-annotation`` keeps only accepts and applied
fixes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import stat
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from annotation import images as image_store
from annotation.annotate_cli import main as annotate_main
from annotation.client import connect, find_dataset, iter_raw_records
from annotation.images import url_builder
from annotation.push import push
from annotation.render import REASONS
from annotation.rubric import load_rubric
from annotation.settings import dataset_name
from pipelines.publish.cli import main as publish_main
from schemas.buildio import read_records
from schemas.taxonomy import taxonomy

REPO = Path(__file__).resolve().parents[2]
IMAGE_BASE = "http://127.0.0.1:9"  # never fetched: the HTML only names the URLs


def _run(main, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _push_round(env, build: Path, name: str, *extra: str) -> dict:
    argv = ["push", "--build", str(build), "--dataset", name, "--workspace", env.workspace]
    argv += ["--image-base", IMAGE_BASE, *extra]
    rc, out, err = _run(annotate_main, argv)
    assert rc == 0, err
    return json.loads(out)


def _answer(url: str, user: dict, record_id: str, values: dict) -> None:
    body = {"status": "submitted", "values": {k: {"value": v} for k, v in values.items()}}
    with httpx.Client(base_url=url, headers={"X-Argilla-Api-Key": user["api_key"]}) as http:
        r = http.post(f"/api/v1/records/{record_id}/responses", json=body)
    assert r.status_code == 201, r.text


def _values(rubric, category: str, verdict: str, fld: str, sub: str, comment: str = "") -> dict:
    """A complete response: every required question answered, the taxonomy and verdict set."""
    out = {}
    for q in rubric.for_category(category):
        if q.taxonomy == "field":
            out[q.name] = fld
        elif q.taxonomy == "subfield":
            out[q.name] = sub
        elif q.name == rubric.verdict_question:
            out[q.name] = verdict
        elif q.kind == "text":
            if comment and not q.correction:  # the comment, not a correction
                out[q.name] = comment
        elif q.required:
            out[q.name] = q.values[-2] if q.kind == "rating" else q.labels[0]
    return out


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _published(release: Path) -> dict[str, str]:
    rows = pq.read_table(release / "data", columns=["id", "subfield"]).to_pylist()
    return {r["id"]: r["subfield"] for r in rows}


def test_needs_edit_second_round_and_publish(env, sample_build, tmp_path):
    rubric = load_rubric()
    client = connect(env.url, env.api_key)
    name = f"ne-{uuid.uuid4().hex[:6]}"
    report = _push_round(env, sample_build, name, "--sample", "stratified", "--per-cell", "2")
    category = max(report["selected"], key=report["selected"].get)  # the fullest dataset
    ds = find_dataset(client, dataset_name(name, category), env.workspace)
    items = sorted(iter_raw_records(client, ds.id), key=lambda i: i["external_id"])
    assert len(items) >= 5
    rec = [
        (i["id"], i["external_id"], i["metadata"]["field"], i["metadata"]["subfield"])
        for i in items
    ]
    a = env.create_annotator(f"ne-a-{uuid.uuid4().hex[:6]}")
    b = env.create_annotator(f"ne-b-{uuid.uuid4().hex[:6]}")
    tax = taxonomy()
    foreign = next(s for f, subs in tax.items() if f != rec[1][2] for s in subs)  # impossible
    valid = next(s for s in tax[rec[4][2]] if s != rec[4][3])
    comment_a = "wrong field <b>really</b> & the caption does not match"
    plan = [  # (record, (verdict, subfield, comment) of A, of B)
        (rec[0], ("fix", rec[0][3], comment_a), ("fix", rec[0][3], "needs a new caption")),
        (rec[1], ("fix", foreign, ""), ("fix", foreign, "")),
        (rec[2], ("accept", rec[2][3], ""), ("fix", rec[2][3], "")),
        (rec[3], ("accept", rec[3][3], ""), ("accept", rec[3][3], "")),
        (rec[4], ("fix", valid, ""), ("fix", valid, "")),
    ]
    for (rid, _, fld, _), va, vb in plan:
        _answer(env.url, a, rid, _values(rubric, category, va[0], fld, va[1], va[2]))
        _answer(env.url, b, rid, _values(rubric, category, vb[0], fld, vb[1], vb[2]))
    ids = [r[1] for r in rec[:5]]

    out = tmp_path / "annotations"
    argv = ["pull", "--dataset", name, "--workspace", env.workspace, "--output", str(out)]
    rc, printed, _ = _run(annotate_main, [*argv, "--bootstrap", "50"])
    assert rc == 0 and "3 records need an edit" in printed
    decisions = {d["id"]: d for d in _jsonl(out / "decisions.jsonl")}
    assert set(decisions) == set(ids)
    assert decisions[ids[0]]["comments"] == [
        {"annotator": a["username"], "text": comment_a},
        {"annotator": b["username"], "text": "needs a new caption"},
    ]
    assert decisions[ids[3]]["needs_edit"] == [] and decisions[ids[3]]["verdict"] == "accept"
    assert decisions[ids[4]]["corrections"] == {"subfield": valid}
    assert decisions[ids[4]]["needs_edit"] == []
    edits = {n["id"]: n for n in _jsonl(out / "needs_edit.jsonl")}
    assert {k: v["why"] for k, v in edits.items()} == {
        ids[0]: ["fix_without_correction"],
        ids[1]: ["fix_without_correction", "impossible_pair"],
        ids[2]: ["fix_without_correction", "verdict_tie"],
    }
    assert edits[ids[0]]["comments"] == decisions[ids[0]]["comments"]
    assert edits[ids[1]]["answers"][a["username"]]["correct_subfield"] == foreign
    agreement = json.loads((out / "agreement.json").read_text())
    assert agreement["needs_edit_records"] == 3
    assert any(ids[1] in p and "needs_edit" in p for p in agreement["problems"])

    # the second push: exactly the needs_edit records, to a new round, comments shown
    rc, _, err = _run(
        annotate_main,
        ["push", "--build", str(sample_build), "--dataset", name, "--workspace", env.workspace,
         "--image-base", IMAGE_BASE, "--needs-edit", str(out)],
    )  # fmt: skip
    assert rc == 2 and f"--dataset {name}-r2" in err  # the old round keeps its responses
    second = _push_round(env, sample_build, f"{name}-r2", "--needs-edit", str(out))
    assert second["selected"] == {category: 3} and second["pushed"] == {category: 3}
    ds2 = find_dataset(client, dataset_name(f"{name}-r2", category), env.workspace)
    items2 = {i["external_id"]: i for i in iter_raw_records(client, ds2.id)}
    assert set(items2) == set(ids[:3])
    html = items2[ids[0]]["fields"]["item"]["html"]
    assert "Sent back from the previous round" in html
    assert REASONS["fix_without_correction"].split("“")[0] in html  # in words, not a code
    assert "wrong field &lt;b&gt;really&lt;/b&gt; &amp; the caption" in html
    assert "<b>really</b>" not in html

    # publish: needs_edit left out by default, counted in the card
    build = ["--build", str(sample_build), "--version", "0.1.0", "--annotations", str(out)]
    release = tmp_path / "release"
    assert publish_main([*build, "--output", str(release)]) == 0
    published = _published(release)
    assert not set(ids[:3]) & set(published)
    assert {ids[3], ids[4]} <= set(published) and published[ids[4]] == valid
    dropped = _jsonl(release / "dropped.jsonl")
    assert {d["id"] for d in dropped if d["reason"] == "needs_edit"} == set(ids[:3])
    card = (release / "README.md").read_text().replace("\\_", "_")  # Markdown-escaped
    assert "| apply_annotations | needs_edit | 3 |" in card  # the card counts them
    # ... published on request
    included = tmp_path / "release-included"
    assert publish_main([*build, "--output", str(included), "--include-needs-edit"]) == 0
    assert set(ids) <= set(_published(included))
    # --require-annotation: accepted items and applied fixes only, needs_edit never
    required = tmp_path / "release-required"
    argv = [*build, "--output", str(required), "--require-annotation", "--include-needs-edit"]
    assert publish_main(argv) == 0
    assert set(_published(required)) == {ids[3], ids[4]}

    # the second round settles one record; pull --previous merges both rounds
    for ann in (a, b):
        values = _values(rubric, category, "accept", rec[0][2], rec[0][3])
        _answer(env.url, ann, items2[ids[0]]["id"], values)
    out2 = tmp_path / "annotations-r2"
    argv = ["pull", "--dataset", f"{name}-r2", "--workspace", env.workspace]
    argv += ["--output", str(out2), "--previous", str(out), "--bootstrap", "0"]
    rc, printed, _ = _run(annotate_main, argv)
    assert rc == 0 and "carried over" in printed
    merged = {d["id"]: d for d in _jsonl(out2 / "decisions.jsonl")}
    assert set(merged) == set(ids) and merged[ids[0]]["verdict"] == "accept"
    assert merged[ids[0]]["needs_edit"] == [] and merged[ids[1]] == decisions[ids[1]]
    assert {n["id"] for n in _jsonl(out2 / "needs_edit.jsonl")} == {ids[1], ids[2]}


def test_choices_fit_the_items(env, sample_build):
    """Image, sub-instruction and check choices are sized per category dataset; a later,
    larger item still goes in, flagged as oversized with a note in its HTML."""
    client = connect(env.url, env.api_key)
    rubric = load_rubric()
    records = list(read_records(str(sample_build)))
    name = f"fit-{uuid.uuid4().hex[:6]}"
    msr = sorted((r for r in records if r["category"] == "MSR"), key=lambda r: len(r["images"]))
    small, big = msr[0], msr[-1]
    if_records = [r for r in records if r["category"] == "IF"][:5]
    url = url_builder(IMAGE_BASE)
    push(client, [small, *if_records], name, rubric, url, workspace=env.workspace)
    ds = find_dataset(client, dataset_name(name, "MSR"), env.workspace)
    labels = {q.name: list(getattr(q, "labels", []) or []) for q in ds.settings.questions}
    assert labels["irrelevant_images"] == ["image_1", "image_2"]  # 1 image; Argilla wants 2
    ds_if = find_dataset(client, dataset_name(name, "IF"), env.workspace)
    labels_if = {q.name: list(getattr(q, "labels", []) or []) for q in ds_if.settings.questions}
    most = max(len(r["instruction"]["components"]) for r in if_records)
    assert labels_if["unverifiable_checks"] == [f"check_{i}" for i in range(1, max(2, most) + 1)]
    assert labels_if["unanswerable_subinstructions"][-1] == f"sub_{max(2, most)}"
    assert "checks_verifiable" in labels_if
    report = push(client, [big], name, rubric, url, workspace=env.workspace)
    assert report.oversized == Counter({"MSR": 1}) and report.pushed == Counter({"MSR": 1})
    html = next(i for i in iter_raw_records(client, ds.id) if i["external_id"] == big["id"])[
        "fields"
    ]["item"]["html"]
    assert f"has {len(big['images'])} images but the choices below stop at image_2" in html
    # the guidelines say what Argilla cannot check
    assert "cannot narrow the subfield list" in ds.settings.guidelines


def test_wrong_workspace_and_dataset_say_what_exists(env):
    for command in ("status", "pull"):
        argv = [command, "--dataset", "nope", "--workspace", "no-such-workspace"]
        if command == "pull":
            argv += ["--output", "/nonexistent"]
        rc, _, err = _run(annotate_main, argv)
        assert rc == 2 and "Traceback" not in err
        assert "no-such-workspace" in err and env.workspace in err
    rc, _, err = _run(
        annotate_main, ["status", "--dataset", "no-such-round", "--workspace", env.workspace]
    )
    assert rc == 2 and "rounds there:" in err


def test_busy_image_port_fails_before_copying(env, sample_build, tmp_path):
    root = tmp_path / "images"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["push", "--build", str(sample_build), "--dataset", "x", "--image-root", str(root)]
        rc, _, err = _run(annotate_main, [*argv, "--image-port", str(port)])
    assert rc == 2 and f"port {port}" in err
    assert not (root / "images").exists()


def test_bare_images_stop_stops_every_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MMLOOM_IMAGE_REGISTRY", str(tmp_path / "image-servers.json"))
    monkeypatch.setenv("MMLOOM_ARGILLA_HOME", str(tmp_path / "home"))  # roots elsewhere too
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        image_store.start_image_server(root, port)
    rc, out, _ = _run(annotate_main, ["images", "stop"])
    assert rc == 0 and all(str(r.resolve()) in out for r in roots)
    assert not any((r / image_store.STATE_NAME).exists() for r in roots)
    assert _run(annotate_main, ["images", "stop"])[1].strip() == "No image server was running."


def test_serve_writes_a_private_env_file(argilla_server):
    path = argilla_server.home / "argilla.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert f"ARGILLA_API_URL={argilla_server.url}" in text
    assert f"ARGILLA_API_KEY={argilla_server.api_key}" in text


def test_demo_next_steps_run_as_printed(env, sample_build, tmp_path):
    """The lines `make demo` ends with (scripts/demo_next_steps.sh), run as printed against
    this session's server, in a shell without ARGILLA_* variables."""
    name = f"demo-{uuid.uuid4().hex[:6]}"
    _push_round(env, sample_build, name, "--sample", "stratified", "--per-cell", "1")
    bin_dir = Path(sys.executable).parent
    args = [bin_dir, env.home / "argilla.env", sample_build, name, env.workspace]
    args += [tmp_path / "annotations", tmp_path / "release"]
    printed = subprocess.run(
        ["bash", "-c", 'source scripts/demo_next_steps.sh && demo_next_steps "$@"', "-"]
        + [str(a) for a in args],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    commands = [line for line in printed.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 3 and commands[1].startswith("source ")
    shell_env = {k: v for k, v in os.environ.items() if not k.startswith("ARGILLA_")}
    shell_env["PYTHONPATH"] = str(REPO)  # this checkout's code behind the venv's entry point
    for line in commands:
        done = subprocess.run(
            ["bash", "-c", line], cwd=REPO, env=shell_env, capture_output=True, text=True
        )
        assert done.returncode == 0, (line, done.stderr[-2000:])
        assert env.api_key not in done.stdout + done.stderr
    assert (tmp_path / "annotations" / "decisions.jsonl").exists()
    assert (tmp_path / "annotations" / "needs_edit.jsonl").exists()
    assert (tmp_path / "release" / "README.md").exists()
    assert env.api_key not in printed
