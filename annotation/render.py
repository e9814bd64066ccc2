"""Render a record as the HTML an annotator reads in Argilla.

The question and the reference answer each sit in their own framed section, separated by a
rule. Inside a section the segments are rendered as blocks, in order: a block is a text
followed by its images, shown full width below the text and numbered (so rubric questions
can refer to "image 2"; a click opens the image full size in a new tab). Images are never
placed inside a sentence: when a source splits one sentence around images (ReMI's "in
<image>, <image> and <image>"), the sentence stays one text with ``[image N]`` where each
image stood, and the images follow it. Consecutive blocks (the steps of a PBL answer, the
frames of a story) are separated by a thin line, and the texts of two segments are never
glued together. Then come the lettered options of a multiple-choice item (only when the
question text does not already list them), for IF items the numbered sub-instructions with
their types and weights, and, for a record sent back to annotators, a box with the previous
round's reasons in plain words, each annotator's answers and their comments. A record that a
validity audit flagged (``audit.flags``) shows its flags above the question, numbered ("flag
1", ...) so the rubric's ``flag_N`` question can refer to them, each with its reason (written
for annotators by the stage that raised it) and the figure and threshold behind it, under a
heading saying that flags are evidence to check, not verdicts.

Every text that comes from a source (segments, options, sub-instructions, ids) or from an
annotator (comments, answers) is escaped with :func:`html.escape`; wikiHow and VIST text can
contain markup. This matters twice over in Argilla 2.x: a custom field is rendered inside an
unsandboxed ``<iframe srcdoc>`` that embeds the record as raw JSON in a ``<script>`` element,
so a raw ``</script>`` in a field value would end that script and let the rest run as HTML
with the annotator's session. After escaping, such a text cannot contain ``<`` at all;
:func:`render_record` also checks that its output holds no ``<script``, ``</script`` or
``<!--``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from typing import Any

STYLE = (
    "<style>"
    ".mml{font-family:sans-serif;font-size:15px;line-height:1.5;color:#222}"
    ".mml .meta{color:#666;font-size:12px;margin-bottom:8px}"
    ".mml .part{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:10px 0}"
    ".mml .part>h4{margin:0 0 6px;font-size:13px;text-transform:uppercase;letter-spacing:.05em;"
    "color:#555}"
    ".mml .q{background:#f6f8fa}"
    ".mml .a{background:#fff}"
    ".mml hr{border:0;border-top:3px double #999;margin:14px 0}"
    ".mml .blk{padding:6px 0}"
    ".mml .blk+.blk{border-top:1px dashed #c8c8c8}"
    ".mml .txt{white-space:pre-wrap;margin:0 0 4px}"
    ".mml .imgs{display:flex;flex-wrap:wrap;gap:8px}"
    ".mml figure{display:block;margin:4px 0}"
    ".mml figcaption{font-size:12px;color:#666}"
    ".mml img{display:block;max-width:100%;max-height:360px;min-width:120px;"
    "border:1px solid #ddd;cursor:zoom-in}"
    ".mml .ref{font-size:12px;color:#0b5cad;font-weight:bold}"
    ".mml .prev{border:1px solid #e0a800;background:#fff8e1;padding:6px 10px;margin:8px 0}"
    ".mml .prev ul{margin:4px 0;padding-left:20px}"
    ".mml table{border-collapse:collapse;margin:4px 0}"
    ".mml td,.mml th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}"
    "</style>"
)
_FORBIDDEN = re.compile(r"<\s*/?\s*script|<!--", re.IGNORECASE)
_SENTENCE_END = (".", "!", "?", ":", ";", "\u3002", "\n")
_CONTINUES = re.compile(r"^\s*([a-z]|[,.;:)\]])")

# why a record came back (annotation/pull.py's needs_edit reasons), in plain words
REASONS = {
    "fix_without_correction": "The annotators chose “fix” but gave no field or subfield "
    "correction that could be applied: the edit needed is described in the comments below, "
    "or nowhere.",
    "impossible_pair": "The annotators' corrected field and subfield do not go together in "
    "the taxonomy, so the correction was not applied.",
    "taxonomy_tie": "The annotators disagree on the field or subfield correction (no majority).",
    "verdict_tie": "The verdict was a tie between the annotators.",
}


class RenderError(ValueError):
    """The rendered HTML failed the safety check (a bug: source text was not escaped)."""


def escape(text: Any) -> str:
    """Escape a source text for HTML text or attribute context (quotes included)."""
    return html.escape("" if text is None else str(text), quote=True)


def reason_text(code: str) -> str:
    """A needs_edit reason in plain words (an unknown code is shown as its words)."""
    return REASONS.get(code) or f"Sent back for: {code.replace('_', ' ')}."


def _blocks(segments: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Group segments into blocks of ``{"text": [pieces], "images": [paths]}``.

    A segment's text starts a new block unless it continues the sentence of the current
    block (the block's text does not end a sentence and the new text starts in lower case
    or with punctuation); images stay in the block of the text before them, and where a
    continuing text follows an image, a piece ``("img", i)`` marks where the block's image
    ``i`` stood.
    """
    blocks: list[dict[str, Any]] = []
    for seg in segments or []:
        text = seg.get("text") or ""
        if text.strip():
            cur = blocks[-1] if blocks else None
            joined = "".join(p for p in cur["text"] if isinstance(p, str)) if cur else ""
            if (
                cur is not None
                and joined.strip()
                and not joined.rstrip(" \t").endswith(_SENTENCE_END)
                and _CONTINUES.match(text)
            ):
                for i in range(len(cur["images"])):
                    if ("img", i) not in cur["text"]:
                        cur["text"].append(("img", i))
                cur["text"].append(text)
            else:
                blocks.append({"text": [text], "images": []})
        if seg.get("image"):
            if not blocks:
                blocks.append({"text": [], "images": []})
            blocks[-1]["images"].append(seg["image"])
    return blocks


def _join(pieces: list[str]) -> str:
    """Join escaped text pieces with a space where two words would otherwise touch."""
    out = ""
    for piece in pieces:
        touching = out and piece and not out[-1].isspace() and not piece[0].isspace()
        if touching and piece[0] not in ",.;:!?)]" and out[-1] not in "([":
            out += " "
        out += piece
    return out


def _segments(
    segments: list[dict[str, Any]] | None, image_url: Callable[[str], str], counter: list[int]
) -> str:
    """The segments as blocks: each text, then its numbered images linking to full size."""
    out = []
    for block in _blocks(segments):
        numbers = []
        for _ in block["images"]:
            counter[0] += 1
            numbers.append(counter[0])
        pieces = [
            f'<span class="ref">[image {numbers[p[1]]}]</span>' if isinstance(p, tuple) else
            escape(p)
            for p in block["text"]
        ]  # fmt: skip
        parts = []
        text = _join(pieces).strip()
        if text:
            parts.append(f'<div class="txt">{text}</div>')
        figures = []
        for n, path in zip(numbers, block["images"]):
            src = escape(image_url(path))
            figures.append(
                f'<figure><a href="{src}" target="_blank" rel="noopener noreferrer">'
                f'<img src="{src}" alt="image {n}"></a>'
                f"<figcaption>image {n} (click to enlarge)</figcaption></figure>"
            )
        if figures:
            parts.append(f'<div class="imgs">{"".join(figures)}</div>')
        out.append(f'<div class="blk">{"".join(parts)}</div>')
    return "".join(out)


def _question_text(record: dict[str, Any]) -> str:
    return "\n".join(s.get("text") or "" for s in record.get("question") or [])


def options_in_question(record: dict[str, Any]) -> bool:
    """Whether the question text already lists every option (label and text), as
    MathVista's ``Choices: (A) ...`` does; the options are then not shown a second time."""
    options = record.get("options") or []
    text = _question_text(record)
    return bool(options) and all(
        str(o.get("text")) in text and f"({o.get('label')})" in text for o in options
    )


def _options(options: list[dict[str, Any]] | None) -> str:
    if not options:
        return ""
    items = "".join(f"<li><b>{escape(o['label'])}</b>. {escape(o['text'])}</li>" for o in options)
    return f'<h4>Options</h4><ul style="list-style:none;padding-left:4px">{items}</ul>'


def _instruction(instruction: dict[str, Any] | None) -> str:
    if not instruction:
        return ""
    rows = "".join(
        f"<tr><td>{i}</td><td>{escape(c['text'])}</td><td>{escape(c['type'])}</td>"
        f"<td>{escape(c['weight'])}/10</td></tr>"
        for i, c in enumerate(instruction.get("components") or [], 1)
    )
    return (
        f"<h4>Sub-instructions ({escape(instruction.get('complexity'))})</h4>"
        "<table><tr><th>#</th><th>sub-instruction</th><th>type</th><th>weight</th></tr>"
        f"{rows}</table>"
    )


def _value(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(escape(v) for v in value)
    if isinstance(value, (str, int, float)):
        return escape(value)
    return escape(json.dumps(value, ensure_ascii=False, sort_keys=True))


def _answers(answers: dict[str, dict[str, Any]] | None) -> str:
    """A table: one row per question, one column per earlier annotator."""
    if not answers:
        return ""
    people = sorted(answers)
    questions = list(dict.fromkeys(q for p in people for q in answers[p]))
    head = "".join(f"<th>{escape(p)}</th>" for p in people)
    rows = "".join(
        f"<tr><th>{escape(q.replace('_', ' '))}</th>"
        + "".join(f"<td>{_value(answers[p].get(q))}</td>" for p in people)
        + "</tr>"
        for q in questions
    )
    return f"<div><b>Their answers</b></div><table><tr><th>question</th>{head}</tr>{rows}</table>"


def audit_flags(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's validity-audit flags in their stored order (flag 1 first); empty when the
    record was not audited or nothing was found."""
    flags = (record.get("audit") or {}).get("flags") or []
    return [f for f in flags if isinstance(f, dict)]


def _number(value: Any) -> str:
    return escape(f"{value:.4g}" if isinstance(value, float) else value)


def _flags(record: dict[str, Any]) -> str:
    """The box listing the record's audit flags in plain words (empty when it has none)."""
    flags = audit_flags(record)
    if not flags:
        return ""
    items = []
    for n, f in enumerate(flags, 1):
        basis = []
        if f.get("figure") is not None:
            basis.append(f"measured {_number(f['figure'])}")
        if f.get("threshold") is not None:
            basis.append(f"threshold {_number(f['threshold'])}")
        items.append(
            f"<li><b>flag {n}</b> ({escape(str(f.get('code') or '').replace('_', ' '))}, "
            f"raised by {escape(f.get('stage'))}): {escape(f.get('reason'))}"
            + (f" <small>({'; '.join(basis)})</small>" if basis else "")
            + "</li>"
        )
    return (
        '<div class="prev flags"><b>Audit flags: evidence for you to check, not verdicts</b>'
        f"<ul>{''.join(items)}</ul>"
        "<small>Tick flag_N in the audit-flags question when flag N holds; leave it unticked "
        "to clear it.</small></div>"
    )


def _previous(notes: dict[str, Any] | None) -> str:
    if not notes:
        return ""
    extra = "".join(f'<div class="prev">{escape(line)}</div>' for line in notes.get("extra") or [])
    if not notes.get("why") and not notes.get("comments") and not notes.get("answers"):
        return extra
    reasons = "".join(f"<li>{escape(reason_text(w))}</li>" for w in notes.get("why") or [])
    comments = "".join(
        f"<li><b>{escape(c.get('annotator'))}</b>: {escape(c.get('text'))}</li>"
        for c in notes.get("comments") or []
    )
    verdict = notes.get("verdict")
    return (
        '<div class="prev"><b>Sent back from the previous round</b>'
        + (f" (its verdict: {escape(verdict)})" if verdict else "")
        + (f"<ul>{reasons}</ul>" if reasons else "")
        + _answers(notes.get("answers"))
        + "<div><b>Their comments</b></div>"
        + (f"<ul>{comments}</ul>" if comments else "<div><small>none</small></div>")
        + "</div>"
        + extra
    )


def render_record(
    record: dict[str, Any],
    image_url: Callable[[str], str],
    notes: dict[str, Any] | None = None,
) -> str:
    """The HTML of ``record``.

    Args:
        record: an mmloom record (JSON view; image bytes are not needed).
        image_url: maps a record image path (``images/<sha256>.<ext>``) to the URL the
            annotator's browser loads.
        notes: shown above the item: for a record sent back to annotators ``why`` (list of
            needs_edit reasons, shown in plain words), ``verdict``, ``comments``
            (``[{"annotator", "text"}]``) and ``answers`` (annotator -> question -> value)
            of the previous round; ``extra``: more lines (e.g. images the dataset's choices
            do not cover).
        Audit flags (``record["audit"]["flags"]``) are shown above the question.

    Returns:
        An HTML fragment (style + one ``div``), safe to place in an Argilla custom field.

    Raises:
        RenderError: the output would contain a script tag or comment (cannot happen for
            escaped input; raised rather than pushing unsafe HTML).
    """
    counter = [0]
    parts = [
        STYLE,
        '<div class="mml">',
        f'<div class="meta">{escape(record.get("id"))} · {escape(record.get("category"))} · '
        f"{escape(record.get('field'))} / {escape(record.get('subfield'))} · "
        f"{escape(record.get('question_format'))}</div>",
        _previous(notes),
        _flags(record),
        '<div class="part q"><h4>Question</h4>',
        _segments(record.get("question"), image_url, counter),
        "" if options_in_question(record) else _options(record.get("options")),
        _instruction(record.get("instruction")),
        "</div><hr>",
        '<div class="part a"><h4>Reference answer</h4>',
        _segments(record.get("answer"), image_url, counter),
    ]
    if record.get("unit"):
        parts.append(f"<div><small>unit: {escape(record['unit'])}</small></div>")
    parts.append("</div></div>")
    out = "".join(parts)
    if _FORBIDDEN.search(out):
        raise RenderError(
            f"rendered HTML of {record.get('id')!r} contains a script tag or comment; "
            "refusing to push it (report this as a bug)"
        )
    return out


def image_count(record: dict[str, Any]) -> int:
    """Number of image segments in the question and the answer (the numbers shown)."""
    return sum(
        1 for part in ("question", "answer") for s in record.get(part) or [] if s.get("image")
    )
