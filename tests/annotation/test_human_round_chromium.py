"""The human round in Argilla's real web UI (headless /usr/bin/chromium), mmloom's real rubric.

``mmloom annotate push`` sends one IF item and one MSR item of the sample build (a stratified
sample of one cell each; images from the loopback image server). Two annotators sign in and
answer every question of both items in the browser: the ratings, the labels (the verdict
``fix``), the field/subfield suggestions (kept for IF; the MSR subfield changed through the
label search), the optional multi-labels, the IF checks, ``weights_fit``, ``harmful``, the
comment and both correction fields (IF: weights read off the page's sub-instruction table and
the reference answer's checklist rewritten to match; MSR: the answer), then submit.
``mmloom annotate pull`` and ``mmloom publish --annotations`` follow: every answer is in
``responses.jsonl`` (pull folder and release) as submitted under the annotators' pseudonymous
ids, and each agreed correction is applied in the release rows read back with ``datasets``,
its previous value kept in ``annotation.edits``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from datasets import load_dataset
from playwright import sync_api as playwright_api

from annotation.client import connect, find_dataset
from annotation.corrections import normalise_answer
from annotation.images import stop_image_server
from annotation.pull import pseudonym
from annotation.push import select_records, selection_key
from annotation.render import image_count
from annotation.rubric import load_rubric
from annotation.settings import dataset_name
from pipelines.cli import main as mmloom
from schemas.buildio import read_records
from schemas.taxonomy import taxonomy
from tests.annotation.conftest import sign_in_and_open
from tests.conftest import CHROMIUM, CHROMIUM_ARGS

MSR_ANSWER = "plt.plot(x, y, color='red', linestyle=':')"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(argv: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = mmloom(argv)
    assert rc == 0, f"mmloom {argv[0]} failed ({rc}): {err.getvalue()[-3000:]}"
    return out.getvalue()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _choose(build: Path) -> tuple[dict, dict]:
    """The IF and MSR items a one-per-cell stratified push sends: an IF item with at least
    three sub-instructions, an MSR item with a free-text answer and at least two images."""
    records = {r["id"]: r for r in read_records(str(build))}
    keys = [selection_key(r) for r in records.values()]
    fields = {(k["category"], k["field"]) for k in keys}
    sizes: dict[str, dict[str, int]] = {}
    for cat, fld in fields:
        sizes.setdefault(cat, {})[fld] = 1
    one_per_cell = [records[k["id"]] for k in select_records(keys, "stratified", sizes=sizes)]

    def fits_if(r: dict) -> bool:
        return r["category"] == "IF" and len(r["instruction"]["components"]) >= 3

    def fits_msr(r: dict) -> bool:
        texts = [s for s in r["answer"] if s["text"] is not None]
        return (
            r["category"] == "MSR"
            and r["answer_type"] == "text"
            and not r["options"]
            and len(texts) == 1
            and image_count(r) >= 2
            and len(taxonomy()[r["field"]]) >= 2
        )

    item_if = next((r for r in one_per_cell if fits_if(r)), None)
    item_msr = next((r for r in one_per_cell if fits_msr(r)), None)
    assert item_if and item_msr, "the sample build lacks an IF or a free-text MSR item"
    return item_if, item_msr


def _new_weights(current: list[int]) -> list[int]:
    """Other weights for the same sub-instructions: the first gets one more, the last one less
    (or the other way round), still whole numbers from 1 summing to 10."""
    new = list(current)
    if new[-1] > 1:
        new[0], new[-1] = new[0] + 1, new[-1] - 1
    else:
        new[0], new[-1] = new[0] - 1, new[-1] + 1
    assert sum(new) == 10 and min(new) >= 1 and new != current
    return new


def _rewrite_checklist(answer: str, weights: list[int]) -> str:
    """The IF reference answer with its checklist's ``(N/10)`` weights set to ``weights``."""
    lines, n = [], 0
    for line in answer.split("\n"):
        m = re.match(r"^(\d+)\. (\S+) \((\d+)/10\):", line)
        if m:
            line = line.replace(f"({m.group(3)}/10)", f"({weights[int(m.group(1)) - 1]}/10)", 1)
            n += 1
        lines.append(line)
    assert n == len(weights), "the IF answer's checklist has one line per sub-instruction"
    return "\n".join(lines)


class Annotator:
    """Answers the questions of the item open in ``page`` the way an annotator does: by
    clicking labels, typing into the text boxes and pressing Submit."""

    def __init__(self, page) -> None:
        self.page = page

    def question(self, name: str):
        return self.page.locator(f'[aria-label="Question: {name}"]')

    def choose(self, question: str, value: Any) -> None:
        """Click one rating value or label (not already chosen) and see it chosen."""
        box = self.page.locator(f'input[id="{question}_{value}"]')
        playwright_api.expect(box).not_to_be_checked()
        self.page.click(f'label[for="{question}_{value}"]')
        playwright_api.expect(box).to_be_checked()

    def kept(self, question: str, value: str) -> None:
        """The suggestion ``value`` is pre-selected; it is kept as the answer."""
        playwright_api.expect(self.page.locator(f'input[id="{question}_{value}"]')).to_be_checked()

    def search_and_choose(self, question: str, value: str) -> None:
        """Find a label through the question's label search (long lists are folded)."""
        self.question(question).locator("input[role=search]").fill(value)
        self.choose(question, value)

    def write(self, question: str, text: str) -> None:
        """Type ``text`` into a text question's editor."""
        editor = self.question(question).locator("[contenteditable=true]")
        editor.fill(text)
        playwright_api.expect(editor).to_have_text(re.compile(r"\S"))

    def submit(self) -> dict:
        """Submit; return the values the browser sent (the server answered 2xx)."""

        def submitted(response) -> bool:  # not a draft the page may save meanwhile
            request = response.request
            if "/responses" not in response.url or request.method not in ("POST", "PUT"):
                return False
            return json.loads(request.post_data or "{}").get("status") == "submitted"

        with self.page.expect_response(submitted) as sent:
            self.page.click("button.button--submit")
        assert sent.value.ok, (sent.value.status, sent.value.text())
        body = json.loads(sent.value.request.post_data)
        return {q: v["value"] for q, v in body["values"].items()}


def _open_item(page, url: str, user: dict, dataset_id, record: dict, signed_in: bool):
    """Open the dataset's annotation page, wait until the item and its images show; return
    the frame that shows the item."""
    if signed_in:
        page.goto(f"{url}/dataset/{dataset_id}/annotation-mode")
    else:
        sign_in_and_open(page, url, user, dataset_id)
    page.locator('[aria-label="Question: verdict"]').wait_for()
    page.frame_locator("iframe").first.get_by_text(record["id"]).first.wait_for()
    frame = next(f for f in page.frames if f != page.main_frame and record["id"] in f.content())
    frame.wait_for_function(
        "n => document.images.length === n"
        " && [...document.images].every(i => i.complete && i.naturalWidth > 0)",
        arg=image_count(record),
    )
    return frame


def _answer_if(page, frame, record: dict, plan: dict) -> dict:
    """Every question of the IF item; the weights are read off the page's table."""
    ui = Annotator(page)
    rows = frame.locator("table tr:has(td)")
    shown = [int(c.split("/")[0]) for c in rows.locator("td:nth-child(4)").all_inner_texts()]
    assert shown == [c["weight"] for c in record["instruction"]["components"]]
    n = len(shown)
    assert page.locator('input[id^="unanswerable_subinstructions_sub_"]').count() == n
    ui.choose("question_clarity", plan["question_clarity"])
    ui.choose("answer_quality", plan["answer_quality"])
    ui.choose("image_relevance", plan["image_relevance"])
    ui.choose("subinstructions_answerable", "some")
    ui.choose("unanswerable_subinstructions", plan["sub"])
    ui.choose("checks_verifiable", "some")
    ui.choose("unverifiable_checks", plan["check"])
    ui.choose("weights_fit", "no")
    ui.kept("correct_field", record["field"])
    ui.kept("correct_subfield", record["subfield"])
    ui.choose("harmful", plan["harmful"])
    ui.write("corrected_answer", plan["if_answer"])
    ui.write("corrected_weights", plan["weights"])
    ui.choose("verdict", "fix")
    ui.write("comment", plan["if_comment"])
    return ui.submit()


def _answer_msr(page, record: dict, plan: dict) -> dict:
    """Every question of the MSR item; the subfield changed, the field kept."""
    ui = Annotator(page)
    ui.choose("question_clarity", plan["question_clarity"])
    ui.choose("answer_quality", plan["answer_quality"])
    ui.choose("image_relevance", plan["image_relevance"])
    ui.choose("irrelevant_images", plan["image"])
    ui.choose("coherence", plan["coherence"])
    ui.kept("correct_field", record["field"])
    ui.kept("correct_subfield", record["subfield"])
    ui.search_and_choose("correct_subfield", plan["subfield"])
    ui.choose("harmful", plan["harmful"])
    ui.write("corrected_answer", MSR_ANSWER)
    ui.choose("verdict", "fix")
    ui.write("comment", plan["msr_comment"])
    return ui.submit()


@pytest.fixture(scope="module")
def ui_round(env, sample_build, tmp_path_factory):
    """Push, answer in Chromium as two annotators, pull, publish; return what tests check."""
    tmp = tmp_path_factory.mktemp("human-round-ui")
    rubric = load_rubric()
    item_if, item_msr = _choose(sample_build)
    sizes = {"IF": {item_if["field"]: 1}, "MSR": {item_msr["field"]: 1}}
    (tmp / "sizes.json").write_text(json.dumps(sizes))
    name = f"hrui-{uuid.uuid4().hex[:6]}"
    images = tmp / "images"
    argv = ["annotate", "push", "--build", str(sample_build), "--dataset", name]
    argv += ["--workspace", env.workspace, "--sample", "stratified", "--per-cell", "0"]
    argv += ["--sizes", str(tmp / "sizes.json")]
    argv += ["--image-root", str(images), "--image-port", str(_free_port())]
    try:
        printed = _run(argv)
        report = json.loads(printed.split("\n", 1)[1])  # after the image-server line
        assert report["pushed"] == {"IF": 1, "MSR": 1}, report
        client = connect(env.url, env.api_key)
        ds_if = find_dataset(client, dataset_name(name, "IF"), env.workspace)
        ds_msr = find_dataset(client, dataset_name(name, "MSR"), env.workspace)

        weights = _new_weights([c["weight"] for c in item_if["instruction"]["components"]])
        if_answer = _rewrite_checklist(item_if["answer"][0]["text"], weights)
        subfield = next(s for s in taxonomy()[item_msr["field"]] if s != item_msr["subfield"])
        users = [env.create_annotator(f"hrui-{x}-{uuid.uuid4().hex[:6]}") for x in "ab"]
        plans = [
            {
                "question_clarity": 5, "answer_quality": 2, "image_relevance": 6, "coherence": 4,
                "sub": "sub_2", "check": "check_3", "image": "image_2", "harmful": "none",
                "weights": "/".join(map(str, weights)), "if_answer": if_answer,
                "subfield": subfield, "if_comment": "the description matters more",
                "msr_comment": "dotted, not dashed: the plot's line is made of dots",
            },
            {
                "question_clarity": 4, "answer_quality": 1, "image_relevance": 5, "coherence": 6,
                "sub": "sub_1", "check": "check_1", "image": "image_1", "harmful": "sensitive",
                "weights": " / ".join(map(str, weights)), "if_answer": if_answer,
                "subfield": subfield, "if_comment": "checklist weights follow the table",
                "msr_comment": "linestyle ':' <b>not</b> '--' & the subfield is wrong",
            },
        ]  # fmt: skip
        sent: dict[tuple[str, str], dict] = {}  # (record id, username) -> values sent
        with playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for user, plan in zip(users, plans, strict=True):
                    page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
                    page.set_default_timeout(60_000)
                    try:
                        frame = _open_item(page, env.url, user, ds_if.id, item_if, False)
                        sent[(item_if["id"], user["username"])] = _answer_if(
                            page, frame, item_if, plan
                        )
                        _open_item(page, env.url, user, ds_msr.id, item_msr, True)
                        sent[(item_msr["id"], user["username"])] = _answer_msr(page, item_msr, plan)
                    except Exception:
                        shot = tmp / f"failure-{user['username']}.png"
                        page.screenshot(path=str(shot), full_page=True)
                        (tmp / f"failure-{user['username']}.html").write_text(page.content())
                        print(f"screenshot of the failure: {shot}")
                        raise
                    finally:
                        page.context.close()
            finally:
                browser.close()

        out = tmp / "annotations"
        argv = ["annotate", "pull", "--dataset", name, "--workspace", env.workspace]
        _run([*argv, "--output", str(out), "--bootstrap", "50"])
        release = tmp / "release"
        argv = ["publish", "--build", str(sample_build), "--annotations", str(out)]
        _run([*argv, "--output", str(release), "--version", "0.4.0"])
    finally:
        stop_image_server(images)
    return {
        "rubric": rubric, "if": item_if, "msr": item_msr, "users": users, "plans": plans,
        "sent": sent, "out": out, "release": release, "weights": weights,
        "if_answer": if_answer, "subfield": subfield,
    }  # fmt: skip


def _pseudonyms(ui_round) -> dict[str, str]:
    salt = bytes.fromhex((ui_round["out"] / "annotator_salt").read_text().strip())
    return {u["username"]: pseudonym(str(u["id"]), salt) for u in ui_round["users"]}


def _typed(got: Any, typed: str) -> bool:
    """Argilla's text editor reports a text of several lines with one line break added."""
    return got == typed or ("\n" in typed and got == typed + "\n")


def test_browser_sent_every_answer(ui_round):
    rubric = ui_round["rubric"]
    for (rid, _), values in ui_round["sent"].items():
        category = rid.split("_", 1)[0]
        # every question answered, but the audit question: the plans tick no flag (optional)
        assert set(values) == set(rubric.categories[category]) - {rubric.audit_question}, rid
        assert all(v not in (None, "", []) for v in values.values()), values


def test_every_answer_is_in_responses_jsonl(ui_round):
    out, release = ui_round["out"], ui_round["release"]
    item_if, item_msr = ui_round["if"], ui_round["msr"]
    pseudo = _pseudonyms(ui_round)
    lines = _jsonl(out / "responses.jsonl")
    assert {x["annotator"] for x in lines} == set(pseudo.values())
    assert all(re.fullmatch(r"ann-[0-9a-f]{12}", x["annotator"]) for x in lines)
    text = (out / "responses.jsonl").read_text()
    for user in ui_round["users"]:
        assert user["username"] not in text and user["api_key"] not in text
    assert all(x["status"] == "submitted" and x["updated_at"] for x in lines)
    got = {(x["record_id"], x["annotator"], x["question"]): x["value"] for x in lines}
    rubric = ui_round["rubric"]
    expected_keys = {
        (r["id"], p, q)
        for r in (item_if, item_msr)
        for p in pseudo.values()
        for q in rubric.categories[r["category"]]
    }
    assert set(got) == expected_keys  # every question, both annotators, nothing else
    for user, plan in zip(ui_round["users"], ui_round["plans"], strict=True):
        who = pseudo[user["username"]]
        answers_if = {q: got[(item_if["id"], who, q)] for q in rubric.categories["IF"]}
        typed = ("corrected_answer", "comment")
        assert {k: v for k, v in answers_if.items() if k not in typed} == {
            "question_clarity": plan["question_clarity"],
            "answer_quality": plan["answer_quality"],
            "image_relevance": plan["image_relevance"],
            "subinstructions_answerable": "some",
            "unanswerable_subinstructions": [plan["sub"]],
            "checks_verifiable": "some",
            "unverifiable_checks": [plan["check"]],
            "weights_fit": "no",
            "correct_field": item_if["field"],
            "correct_subfield": item_if["subfield"],
            "harmful": plan["harmful"],
            "corrected_weights": plan["weights"],
            "verdict": "fix",
            rubric.audit_question: None,  # no flag ticked: an optional question left empty
        }
        assert _typed(answers_if["corrected_answer"], plan["if_answer"])
        assert answers_if["comment"] == plan["if_comment"]
        answers_msr = {q: got[(item_msr["id"], who, q)] for q in rubric.categories["MSR"]}
        assert answers_msr == {
            "question_clarity": plan["question_clarity"],
            "answer_quality": plan["answer_quality"],
            "image_relevance": plan["image_relevance"],
            "irrelevant_images": [plan["image"]],
            "coherence": plan["coherence"],
            "correct_field": item_msr["field"],
            "correct_subfield": plan["subfield"],
            "harmful": plan["harmful"],
            "corrected_answer": MSR_ANSWER,
            "verdict": "fix",
            "comment": plan["msr_comment"],
            rubric.audit_question: None,
        }
        # what the browser sent is what was pulled
        for rid in (item_if["id"], item_msr["id"]):
            sent = ui_round["sent"][(rid, user["username"])]
            assert {q: got[(rid, who, q)] for q in sent} == sent
    # the release carries the same file, listed in its manifest
    assert (release / "annotations" / "responses.jsonl").read_bytes() == (
        out / "responses.jsonl"
    ).read_bytes()
    manifest = json.loads((release / "manifest.json").read_text())
    assert "annotations/responses.jsonl" in manifest["files"]


def test_decisions_resolve_the_corrections(ui_round):
    item_if, item_msr = ui_round["if"], ui_round["msr"]
    pair = sorted(_pseudonyms(ui_round).values())
    decisions = {d["id"]: d for d in _jsonl(ui_round["out"] / "decisions.jsonl")}
    d_if, d_msr = decisions[item_if["id"]], decisions[item_msr["id"]]
    assert d_if["verdict"] == d_msr["verdict"] == "fix"
    assert d_if["needs_edit"] == [] and d_msr["needs_edit"] == []
    assert d_if["corrections"] == {
        "weights": ui_round["weights"],
        "answer": normalise_answer(ui_round["if_answer"]),
    }
    assert d_msr["corrections"] == {"subfield": ui_round["subfield"], "answer": MSR_ANSWER}
    for d in (d_if, d_msr):
        assert all(by == pair for by in d["corrected_by"].values()), d["corrected_by"]
    needs_edit = ui_round["out"] / "needs_edit.jsonl"
    assert not needs_edit.exists() or not needs_edit.read_text().strip()
    texts = [c["text"] for d in (d_if, d_msr) for c in d["comments"]]
    assert sorted(texts) == sorted(
        p[k] for p in ui_round["plans"] for k in ("if_comment", "msr_comment")
    )


def test_release_rows_carry_the_corrections_and_previous_values(ui_round, tmp_path):
    release, item_if, item_msr = ui_round["release"], ui_round["if"], ui_round["msr"]
    pair = sorted(_pseudonyms(ui_round).values())
    rows = load_dataset("parquet", data_dir=str(release / "data"), cache_dir=str(tmp_path))
    published = {r["id"]: r for r in rows["test"]}

    row = published[item_if["id"]]
    weights, answer = ui_round["weights"], normalise_answer(ui_round["if_answer"])
    assert [c["weight"] for c in row["instruction"]["components"]] == weights
    assert row["answer"][0]["text"] == answer and row["gt_answer"][0]["text"] == answer
    assert f"({weights[0]}/10)" in row["gt_answer"][0]["text"]
    edits = {e["target"]: e for e in row["annotation"]["edits"]}
    assert sorted(edits) == sorted(row["annotation"]["corrected"]) == ["answer", "weights"]
    old = [c["weight"] for c in item_if["instruction"]["components"]]
    assert json.loads(edits["weights"]["before"]) == {"weights": old}
    assert json.loads(edits["weights"]["after"]) == {"weights": weights}
    assert json.loads(edits["answer"]["before"]) == {
        "answer": [item_if["answer"][0]["text"]],
        "gt_answer": item_if["gt_answer"][0]["text"],
    }
    assert json.loads(edits["answer"]["after"]) == {"answer": [answer], "gt_answer": answer}
    assert all(e["by"] == pair for e in edits.values())

    row = published[item_msr["id"]]
    assert row["subfield"] == ui_round["subfield"] and row["field"] == item_msr["field"]
    assert row["answer"][0]["text"] == MSR_ANSWER == row["gt_answer"][0]["text"]
    assert json.loads(row["answer_value"]) == MSR_ANSWER
    edits = {e["target"]: e for e in row["annotation"]["edits"]}
    assert sorted(edits) == ["answer", "subfield"]
    assert json.loads(edits["subfield"]["before"]) == item_msr["subfield"]
    assert json.loads(edits["subfield"]["after"]) == ui_round["subfield"]
    assert json.loads(edits["answer"]["before"]) == {
        "answer": [item_msr["answer"][0]["text"]],
        "gt_answer": item_msr["gt_answer"][0]["text"],
        "answer_value": item_msr["answer_value"],
    }
    assert json.loads(edits["answer"]["after"])["answer"] == [MSR_ANSWER]
    assert all(e["by"] == pair for e in edits.values())
