"""Render a record as the interleaved HTML an annotator reads in Argilla.

The question and the reference answer are rendered segment by segment, in order, as one
flowing text with each image inline as ``<img src=URL>`` (numbered, so rubric questions can
refer to "image 2"; a click opens the image full size in a new tab), so that text split around
images (ReMI's "in <image>, <image> and <image>") reads as one sentence. Then come the
lettered options of a multiple-choice item (only when the question text does not already list
them), for IF items the numbered sub-instructions with their types and weights, and, for a
record sent back to annotators, the previous round's reasons and comments.

Every text that comes from a source (segments, options, sub-instructions, ids) is escaped with
:func:`html.escape`; wikiHow and VIST text can contain markup. This matters twice over in
Argilla 2.x: a custom field is rendered inside an unsandboxed ``<iframe srcdoc>`` that embeds
the record as raw JSON in a ``<script>`` element, so a raw ``</script>`` in a field value
would end that script and let the rest run as HTML with the annotator's session. After
escaping, a source text cannot contain ``<`` at all; :func:`render_record` also checks that
its output holds no ``<script``, ``</script`` or ``<!--``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

STYLE = (
    "<style>"
    ".mml{font-family:sans-serif;font-size:15px;line-height:1.45}"
    ".mml h4{margin:14px 0 6px}"
    ".mml .flow{margin:0 0 10px}"
    ".mml .txt{white-space:pre-wrap}"
    ".mml figure{display:inline-block;vertical-align:top;margin:4px 6px 8px 0}"
    ".mml figcaption{font-size:12px;color:#666}"
    ".mml img{max-width:100%;max-height:420px;min-width:120px;border:1px solid #ddd;"
    "cursor:zoom-in}"
    ".mml .prev{border:1px solid #e0a800;background:#fff8e1;padding:6px 10px;margin:8px 0}"
    ".mml table{border-collapse:collapse}"
    ".mml td,.mml th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
    "</style>"
)
_FORBIDDEN = re.compile(r"<\s*/?\s*script|<!--", re.IGNORECASE)


class RenderError(ValueError):
    """The rendered HTML failed the safety check (a bug: source text was not escaped)."""


def escape(text: Any) -> str:
    """Escape a source text for HTML text or attribute context (quotes included)."""
    return html.escape("" if text is None else str(text), quote=True)


def _segments(
    segments: list[dict[str, Any]], image_url: Callable[[str], str], counter: list[int]
) -> str:
    """The segments as one flow: texts as inline spans, images as inline numbered figures
    linking to the full-size image."""
    parts = []
    for seg in segments or []:
        if seg.get("text"):
            parts.append(f'<span class="txt">{escape(seg["text"])}</span>')
        if seg.get("image"):
            counter[0] += 1
            n = counter[0]
            src = escape(image_url(seg["image"]))
            parts.append(
                f"<figure><figcaption>image {n} (click to enlarge)</figcaption>"
                f'<a href="{src}" target="_blank" rel="noopener noreferrer">'
                f'<img src="{src}" alt="image {n}"></a></figure>'
            )
    return f'<div class="flow">{"".join(parts)}</div>' if parts else ""


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


def _previous(notes: dict[str, Any] | None) -> str:
    if not notes:
        return ""
    extra = "".join(f'<div class="prev">{escape(line)}</div>' for line in notes.get("extra") or [])
    if not notes.get("why") and not notes.get("comments"):
        return extra
    why = ", ".join(escape(w) for w in notes.get("why") or [])
    comments = "".join(
        f"<li><b>{escape(c.get('annotator'))}</b>: {escape(c.get('text'))}</li>"
        for c in notes.get("comments") or []
    )
    return (
        '<div class="prev"><b>Sent back from the previous round</b>'
        f"<div><small>why: {why or 'n/a'}</small></div>"
        + (f"<ul>{comments}</ul>" if comments else "<div><small>no comments</small></div>")
        + "</div>"
        + extra
    )


def render_record(
    record: dict[str, Any],
    image_url: Callable[[str], str],
    notes: dict[str, Any] | None = None,
) -> str:
    """The interleaved HTML of ``record``.

    Args:
        record: an mmloom record (JSON view; image bytes are not needed).
        image_url: maps a record image path (``images/<sha256>.<ext>``) to the URL the
            annotator's browser loads.
        notes: shown above the item: for a record sent back to annotators ``why`` (list) and
            ``comments`` (``[{"annotator", "text"}]``) of the previous round; ``extra``: more
            lines (e.g. images the dataset's choices do not cover).

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
        f"<div><small>{escape(record.get('id'))} · {escape(record.get('category'))} · "
        f"{escape(record.get('field'))} / {escape(record.get('subfield'))} · "
        f"{escape(record.get('question_format'))}</small></div>",
        _previous(notes),
        "<h4>Question</h4>",
        _segments(record.get("question"), image_url, counter),
        "" if options_in_question(record) else _options(record.get("options")),
        _instruction(record.get("instruction")),
        "<h4>Reference answer</h4>",
        _segments(record.get("answer"), image_url, counter),
    ]
    if record.get("unit"):
        parts.append(f"<div><small>unit: {escape(record['unit'])}</small></div>")
    parts.append("</div>")
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
