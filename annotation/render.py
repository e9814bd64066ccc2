"""Render a record as the interleaved HTML an annotator reads in Argilla.

The question and the reference answer are rendered segment by segment, in order, with each
image inline as ``<img src=URL>`` (numbered, so rubric questions can refer to "image 2"),
followed by the lettered options of a multiple-choice item and, for IF items, the numbered
sub-instructions with their types and weights.

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
    ".mml .seg{margin:0 0 10px}"
    ".mml .txt{white-space:pre-wrap;margin:0 0 6px}"
    ".mml figure{margin:0 0 8px}"
    ".mml figcaption{font-size:12px;color:#666}"
    ".mml img{max-width:100%;max-height:420px;border:1px solid #ddd}"
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
    parts = []
    for seg in segments or []:
        inner = []
        if seg.get("text"):
            inner.append(f'<div class="txt">{escape(seg["text"])}</div>')
        if seg.get("image"):
            counter[0] += 1
            n = counter[0]
            src = escape(image_url(seg["image"]))
            inner.append(
                f'<figure><figcaption>image {n}</figcaption><img src="{src}" alt="image {n}">'
                "</figure>"
            )
        if inner:
            parts.append('<div class="seg">' + "".join(inner) + "</div>")
    return "".join(parts)


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


def render_record(record: dict[str, Any], image_url: Callable[[str], str]) -> str:
    """The interleaved HTML of ``record``.

    Args:
        record: an mmloom record (JSON view; image bytes are not needed).
        image_url: maps a record image path (``images/<sha256>.<ext>``) to the URL the
            annotator's browser loads.

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
        "<h4>Question</h4>",
        _segments(record.get("question"), image_url, counter),
        _options(record.get("options")),
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
