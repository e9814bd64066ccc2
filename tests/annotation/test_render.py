"""How an item reads: blocks of text then image, no glued segments, no image inside a
sentence, framed question and answer, and a second round's reasons and earlier answers in
plain words (from a pull's responses.jsonl, or the comments of needs_edit.jsonl)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from annotation.images import url_builder
from annotation.push import read_needs_edit
from annotation.render import render_record

DATA = Path(__file__).parent / "data" / "round1-pull"
SHA = ["ab" * 32, "cd" * 32, "ef" * 32]
URL = url_builder("http://127.0.0.1:1")


def _record(question, answer, **extra) -> dict:
    return {
        "id": "PBL_wikihow_1_0",
        "category": "PBL",
        "field": "Health",
        "subfield": "First Aid",
        "question_format": "open_ended",
        "question": question,
        "answer": answer,
        **extra,
    }


def _part(html: str, title: str) -> str:
    return html.split(f"<h4>{title}</h4>", 1)[1].split("</div><hr>", 1)[0]


def _text(fragment: str) -> str:
    """What a reader sees of the texts (tags dropped, figures dropped)."""
    fragment = re.sub(r"<figure>.*?</figure>", "\n", fragment)
    return re.sub(r"<[^>]+>", "\n", fragment)


def test_segments_are_blocks_text_then_image_never_glued():
    rec = _record(
        [
            {"text": "How to treat a burn?", "image": None},
            {"text": "Cooling the Burn", "image": None},
        ],
        [
            {"text": "Step 1: Run cool water over it.", "image": f"images/{SHA[0]}.png"},
            {"text": "Step 2: Cover it.", "image": f"images/{SHA[1]}.jpg"},
            {"text": "…and an image.", "image": None},
            {"text": "this is a picture", "image": f"images/{SHA[2]}.png"},
        ],
    )
    html = render_record(rec, URL)
    seen = _text(html)
    for glued in ("BurnStep", "Burn Step", "image.this", "image. this"):
        assert glued not in seen
    answer = html.split("<h4>Reference answer</h4>", 1)[1]
    assert answer.count('<div class="blk">') == 4  # one block per step
    # each step's text comes before its own image, which comes before the next step
    order = [
        answer.index("Step 1:"), answer.index(SHA[0]), answer.index("Step 2:"),
        answer.index(SHA[1]), answer.index("this is a picture"), answer.index(SHA[2]),
    ]  # fmt: skip
    assert order == sorted(order)
    # no image inside a text: every <img> sits in an .imgs row, never in a .txt
    for txt in re.findall(r'<div class="txt">(.*?)</div>', html):
        assert "<img" not in txt
    # framed question and answer with a rule between, steps separated
    assert html.index('class="part q"') < html.index("<hr>") < html.index('class="part a"')
    assert ".blk+.blk{border-top" in html


def test_a_sentence_split_around_images_stays_one_sentence():
    rec = _record(
        [
            {"text": "Compare", "image": None},
            {"text": None, "image": f"images/{SHA[0]}.png"},
            {"text": ",", "image": None},
            {"text": None, "image": f"images/{SHA[1]}.jpg"},
            {"text": "and the rest.", "image": None},
        ],
        [{"text": "37", "image": None}],
        category="MSR",
    )
    question = _part(render_record(rec, URL), "Question")
    assert question.count('<div class="blk">') == 1
    sentence = re.sub(r"<[^>]+>", "", re.search(r'<div class="txt">(.*?)</div>', question)[1])
    assert sentence == "Compare [image 1], [image 2] and the rest."
    assert question.index("and the rest.") < question.index(SHA[0]) < question.index(SHA[1])


def test_source_text_stays_escaped():
    rec = _record(
        [{"text": "<script>alert(1)</script> & <b>x</b>", "image": None}],
        [{"text": "</div><img src=x onerror=alert(1)>", "image": None}],
    )
    html = render_record(rec, URL)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;x&lt;/b&gt;" in html
    assert "<img src=x" not in html and "<script" not in html.lower()


def test_second_round_shows_reasons_in_words_and_earlier_answers(tmp_path):
    pull = tmp_path / "pull"
    shutil.copytree(DATA, pull)
    notes = read_needs_edit(pull, skip_questions=["comment"], order=["verdict", "harmful"])
    note = notes["PBL_wikihow_1_0"]
    assert list(note["answers"]["A1"]) == ["verdict", "harmful", "correct_field"]
    assert note["answers"] == {
        "A1": {"correct_field": "Health", "harmful": "none", "verdict": "fix"},
        "A2": {"correct_field": "Health", "harmful": "none", "verdict": "accept"},
    }  # submitted only, the latest per question, the comment shown with the comments
    html = render_record(_record([{"text": "Q?", "image": None}], []), URL, note)
    box = html.split('<div class="prev">', 1)[1].split('<div class="part q">', 1)[0]
    assert "fix_without_correction" not in box and "impossible_pair" not in box
    assert "gave no field or subfield correction" in box
    assert "do not go together in the taxonomy" in box
    assert "<th>A1</th><th>A2</th>" in box and "<th>verdict</th><td>fix</td><td>accept</td>" in box
    assert "&lt;b&gt;caption&lt;/b&gt; is wrong" in box  # comments escaped
    assert "<b>caption</b>" not in box


def test_second_round_without_responses_file_falls_back_to_comments(tmp_path):
    pull = tmp_path / "pull"
    pull.mkdir()
    shutil.copy(DATA / "needs_edit.jsonl", pull / "needs_edit.jsonl")
    note = read_needs_edit(pull)["PBL_wikihow_1_0"]
    assert note["answers"] == {"alice": {"correct_field": "Health", "correct_subfield": "Nope"}}
    html = render_record(_record([{"text": "Q?", "image": None}], []), URL, note)
    assert "&lt;b&gt;caption&lt;/b&gt; is wrong" in html and "Nope" in html
    lines = (DATA / "responses.jsonl").read_text().splitlines()
    assert all(
        set(json.loads(line))
        == {"record_id", "dataset", "annotator", "question", "value", "status", "updated_at"}
        for line in lines
    )
