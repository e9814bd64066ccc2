"""MathVista: pure parsing and restructuring (no Beam).

Two published layouts are read (docs/source-formats.md §3):

* ``root`` (GitHub ``lupantech/MathVista`` ``data/``): ``<split>.json`` is a dict
  ``pid -> problem``, ``query.json`` (optional) is a dict ``pid -> prompt``, and the image of a
  problem is ``<root>/<problem["image"]>`` (``images/<pid>.jpg``).
* ``parquet`` (HF ``AI4Math/MathVista``): one row per problem with the same fields plus
  ``decoded_image`` (``{bytes, path}``) and ``query``; ``precision`` is float64 there.

The read unit is one problem (one ``pid``). :func:`problem_to_item` checks a raw problem and
turns it into a reader item; :func:`restructure` turns an item into a draft MSR record. Both
raise :class:`RecordError` with a stable reason.
"""

from __future__ import annotations

import ast
import functools
import json
import math
from typing import Any

from schemas.errors import PipelineConfigError, RecordError
from schemas.fs import exists, join, require_path, resolve_under
from schemas.records import ImageRefs, make_id, new_record, provenance, seg
from schemas.taxonomy import source_table
from sources.base import source_options

SOURCE = "mathvista"
CATEGORY = "MSR"
LICENSE = (
    "CC BY-SA 4.0 (MathVista contributions); images and questions remain under the source "
    "datasets' terms; test-set use only (no training)"
)
QUESTION_TYPES = ("multi_choice", "free_form")
ANSWER_TYPES = ("text", "integer", "float", "list")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Columns read from the HF parquet files (absent ones are simply not read).
PARQUET_COLUMNS = (
    "pid",
    "question",
    "image",
    "decoded_image",
    "choices",
    "unit",
    "precision",
    "answer",
    "question_type",
    "answer_type",
    "metadata",
    "query",
)
# Keys every problem must have (besides pid, metadata and metadata.split, checked first).
REQUIRED_KEYS = ("question", "question_type", "answer_type")
RULE_CONDITIONS = ("skills_any", "context", "task")


# ----------------------------------------------------------------------------- options


def layout(options: dict[str, Any]) -> str:
    """``"parquet"`` when the ``parquet`` option is set, else ``"root"``."""
    return "parquet" if options.get("parquet") else "root"


def selected_splits(options: dict[str, Any]) -> tuple[str, ...]:
    return tuple(source_options(SOURCE, options)["splits"])


def split_files(options: dict[str, Any]) -> list[str]:
    """GitHub layout: the ``<root>/<split>.json`` files of the selected splits that exist."""
    root = options["root"]
    return [p for p in (join(root, f"{s}.json") for s in selected_splits(options)) if exists(p)]


def check_options(options: dict[str, Any]) -> None:
    """Fail before launch on a bad ``sources.mathvista`` block.

    Raises:
        PipelineConfigError: neither or both of ``root`` and ``parquet`` are set, a path does
        not exist, ``splits`` is not a non-empty list of names, or ``root`` holds none of the
        ``<split>.json`` files.
    """
    if bool(options.get("root")) == bool(options.get("parquet")):
        raise PipelineConfigError(
            "sources.mathvista: set exactly one of `root` (GitHub layout: testmini.json, "
            "query.json, images/) or `parquet` (HF parquet file or glob)"
        )
    splits = source_options(SOURCE, options)["splits"]
    if not isinstance(splits, list | tuple) or not splits:
        raise PipelineConfigError(
            "sources.mathvista.splits must be a non-empty list, e.g. [testmini]"
        )
    if not all(isinstance(s, str) and s for s in splits):
        raise PipelineConfigError(f"sources.mathvista.splits must list split names; got {splits!r}")
    if layout(options) == "parquet":
        require_path(options, "parquet", SOURCE)
        return
    root = require_path(options, "root", SOURCE)
    if not split_files(options):
        wanted = ", ".join(f"{s}.json" for s in selected_splits(options))
        raise PipelineConfigError(
            f"sources.mathvista.root: {root} holds none of {wanted}; point `root` at MathVista's "
            "data/ folder (testmini.json, query.json, images/)"
        )


# ----------------------------------------------------------------------------- read stage


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """Parse a JSON file that must hold one object (``testmini.json``, ``query.json``).

    Raises:
        RecordError(malformed_file): invalid JSON, or not an object.
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise RecordError("malformed_file", f"{what}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RecordError(
            "malformed_file", f"{what}: expected an object pid -> record, got {type(data).__name__}"
        )
    return data


def problem_to_item(
    raw: Any,
    *,
    key: str | None,
    position: int,
    source_file: str,
    splits: tuple[str, ...] | list[str],
    query: str | None,
    image_root: str | None,
    image_bytes: bytes | None = None,
    layout_name: str = "root",
) -> dict[str, Any]:
    """Check one raw problem and build the reader item for it.

    Args:
        raw: the problem (a JSON object or a parquet row as a dict, without ``decoded_image``).
        key: the dict key the problem was stored under (GitHub layout), or None (parquet).
        position: index of the problem in its file, for error messages.
        source_file: the file the problem came from.
        splits: the selected splits.
        query: MathVista's ready-made prompt for this pid, if known.
        image_root: folder the problem's ``image`` path is relative to (GitHub layout).
        image_bytes: the embedded image (parquet layout).
        layout_name: ``"root"`` or ``"parquet"``.

    Raises:
        RecordError: ``malformed_record`` (not an object), ``missing_key``, ``pid_mismatch``
        (the dict key differs from ``pid``), ``split_not_selected``, ``no_gold_label``
        (``answer`` absent, null or empty).
    """
    where = f"{source_file} record {position}" + (f" (key {key!r})" if key is not None else "")
    if not isinstance(raw, dict):
        raise RecordError(
            "malformed_record", f"{where}: expected an object, got {type(raw).__name__}"
        )
    if raw.get("pid") is None or raw.get("pid") == "":
        raise RecordError("missing_key", f"{where}: missing key 'pid'")
    pid = str(raw["pid"])
    where = f"{source_file} record {position} (pid {pid})"
    if key is not None and str(key) != pid:
        raise RecordError("pid_mismatch", f"{where}: stored under key {key!r}")
    metadata = raw.get("metadata")
    if not isinstance(metadata, dict):
        raise RecordError("missing_key", f"{where}: missing key 'metadata' (an object)")
    split = metadata.get("split")
    if not isinstance(split, str) or not split:
        raise RecordError("missing_key", f"{where}: missing key 'metadata.split'")
    if split not in splits:
        raise RecordError(
            "split_not_selected", f"{where}: split {split!r} is not in splits {list(splits)}"
        )
    for name in REQUIRED_KEYS:
        if raw.get(name) is None:
            raise RecordError("missing_key", f"{where}: missing key {name!r}")
    if layout_name == "parquet":
        if image_bytes is None:
            raise RecordError("missing_key", f"{where}: missing key 'decoded_image.bytes'")
    elif raw.get("image") is None:
        raise RecordError("missing_key", f"{where}: missing key 'image'")
    answer = raw.get("answer")
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise RecordError("no_gold_label", f"{where}: split {split!r} has no answer")
    problem = {k: v for k, v in raw.items() if k not in ("decoded_image", "query")}
    return {
        "source": SOURCE,
        "source_id": pid,
        "split": split,
        "source_file": source_file,
        "position": position,
        "layout": layout_name,
        "problem": problem,
        "query": query if isinstance(query, str) else None,
        "image_root": image_root,
        "image_bytes": image_bytes,
    }


# ----------------------------------------------------------------------------- restructure


@functools.cache
def field_table() -> dict[str, Any]:
    """``fields.yaml``, checked against the taxonomy and for unknown rule conditions."""
    table = source_table(SOURCE)
    for rule in table["rules"]:
        unknown = set(rule.get("when", {})) - set(RULE_CONDITIONS)
        if unknown:
            raise ValueError(
                f"sources/mathvista/fields.yaml rule {rule.get('name')!r}: unknown condition(s) "
                f"{sorted(unknown)}; use {RULE_CONDITIONS}"
            )
    return table


def _norm(value: Any) -> str:
    return value.strip().lower() if isinstance(value, str) else ""


def classify(metadata: dict[str, Any]) -> tuple[str, str, str]:
    """(field, subfield, rule name) for a problem's metadata: the first matching rule wins."""
    skills_raw = metadata.get("skills") or []
    if isinstance(skills_raw, str):
        skills_raw = [skills_raw]
    skills = {_norm(s) for s in skills_raw}
    context, task = _norm(metadata.get("context")), _norm(metadata.get("task"))
    table = field_table()
    for rule in table["rules"]:
        when = rule.get("when") or {}
        if "skills_any" in when and not skills & {_norm(s) for s in when["skills_any"]}:
            continue
        if "context" in when and context not in {_norm(c) for c in when["context"]}:
            continue
        if "task" in when and task not in {_norm(t) for t in when["task"]}:
            continue
        return rule["field"], rule["subfield"], rule["name"]
    default = table["default"]
    return default["field"], default["subfield"], default.get("name", "default")


def parse_precision(value: Any, where: str) -> int | None:
    """``precision`` as an int: int in the JSON, float64 (NaN for none) in the parquet.

    Raises:
        RecordError(bad_precision): not a whole, non-negative number.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError("bad_precision", f"{where}: precision {value!r} is not a number")
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if not value.is_integer():
            raise RecordError("bad_precision", f"{where}: precision {value!r} is not whole")
    if value < 0:
        raise RecordError("bad_precision", f"{where}: precision {value!r} is negative")
    return int(value)


def _json_safe(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_safe(v) for v in value)
    return False


def parse_list(text: str) -> list[Any] | None:
    """A list answer such as ``"[2014, 2016]"``: JSON first, then a safe Python literal."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    if isinstance(value, tuple):
        value = list(value)
    return value if isinstance(value, list) and _json_safe(value) else None


def typed_answer(answer: str, answer_type: str, where: str) -> Any:
    """The free-form answer parsed by ``answer_type`` (integer, float, list or text).

    Raises:
        RecordError(answer_unparseable): the text does not parse as its declared type.
    """
    text = answer.strip()
    try:
        if answer_type == "integer":
            return int(text)
        if answer_type == "float":
            value = float(text)
            if not math.isfinite(value):
                raise ValueError("not finite")
            return value
    except ValueError as exc:
        raise RecordError(
            "answer_unparseable", f"{where}: answer {answer!r} is not a valid {answer_type}"
        ) from exc
    if answer_type == "list":
        value = parse_list(text)
        if value is None:
            raise RecordError("answer_unparseable", f"{where}: answer {answer!r} is not a list")
        return value
    return answer


def format_hint(
    question_type: str, answer_type: str, precision: int | None, labels: list[str]
) -> str:
    """The answer-format instruction, in the spirit of MathVista's ``query`` hint."""
    if question_type == "multi_choice":
        return f"Answer with the letter of the correct option ({', '.join(labels)})."
    if answer_type == "integer":
        return "Answer with an integer."
    if answer_type == "float":
        if precision is None:
            return "Answer with a decimal number."
        if precision == 0:
            return "Round the answer to the nearest integer."
        return f"Round the answer to {precision} decimal place{'s' if precision != 1 else ''}."
    if answer_type == "list":
        return "Answer with a Python list, e.g., [1, 2, 3]."
    return "Answer with a word or a short phrase."


def question_text(
    question: str,
    unit: str | None,
    choices: list[str] | None,
    hint: str,
) -> str:
    """Question (+ ``(Unit: ...)``), then ``Choices:`` with lettered options, then the hint."""
    parts = [question + (f" (Unit: {unit})" if unit else "")]
    if choices is not None:
        parts.append("Choices:\n" + "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices)))
    parts.append(hint)
    return "\n".join(parts)


def _check_choices(choices: Any, where: str) -> list[str]:
    if choices is None:
        raise RecordError("missing_key", f"{where}: multi_choice problem has no 'choices'")
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise RecordError("bad_choices", f"{where}: choices {choices!r} is not a list of strings")
    if not 2 <= len(choices) <= len(LETTERS):
        raise RecordError("bad_choices", f"{where}: {len(choices)} choices; expected 2 to 26")
    return choices


def restructure(item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """One MathVista problem -> a draft MSR record.

    Question: one segment holding the problem image and the text built by
    :func:`question_text`. Answer and gt_answer: one text segment, ``"(B) 145°"`` for
    multiple choice, else the answer text with its unit (``"11 years"``).

    Raises:
        RecordError: ``unknown_question_type``, ``unknown_answer_type``, ``bad_question``,
        ``missing_key``/``bad_choices`` (multiple choice without a usable choice list),
        ``answer_not_in_choices``, ``ambiguous_answer_choice`` (the answer equals two or more
        identical choices), ``answer_unparseable``, ``bad_precision``, ``bad_unit``,
        ``path_escapes_root``/``bad_image_path`` (GitHub layout image path).
    """
    p = item["problem"]
    pid = item["source_id"]
    where = f"{item['source_file']} record {item.get('position')} (pid {pid})"
    qtype, atype = p.get("question_type"), p.get("answer_type")
    if qtype not in QUESTION_TYPES:
        raise RecordError("unknown_question_type", f"{where}: question_type {qtype!r}")
    if atype not in ANSWER_TYPES:
        raise RecordError("unknown_answer_type", f"{where}: answer_type {atype!r}")
    question = p.get("question")
    if not isinstance(question, str):
        raise RecordError("bad_question", f"{where}: question is {type(question).__name__}")
    answer = p.get("answer")
    if not isinstance(answer, str):
        raise RecordError("answer_unparseable", f"{where}: answer {answer!r} is not a string")
    unit = p.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise RecordError("bad_unit", f"{where}: unit {unit!r} is not a string")
    unit = unit or None  # "" means no unit, as in MathVista's own query builder
    precision = parse_precision(p.get("precision"), where)
    metadata = p.get("metadata") or {}

    if qtype == "multi_choice":
        choices = _check_choices(p.get("choices"), where)
        if answer not in choices:
            raise RecordError(
                "answer_not_in_choices", f"{where}: answer {answer!r} is not one of {choices!r}"
            )
        if choices.count(answer) > 1:
            # e.g. testmini pid 781: choices 9, 12, 18, 18 and answer 18; no letter is right
            raise RecordError(
                "ambiguous_answer_choice",
                f"{where}: answer {answer!r} matches {choices.count(answer)} identical choices "
                f"of {choices!r}; no single letter is the answer",
            )
        index = choices.index(answer)
        labels = list(LETTERS[: len(choices)])
        options_out = [{"label": labels[i], "text": c} for i, c in enumerate(choices)]
        answer_value: Any = labels[index]
        reference = f"({labels[index]}) {answer}"
        question_format = "multiple_choice"
    else:
        choices, labels, options_out = None, [], None
        answer_value = typed_answer(answer, atype, where)
        reference = answer + (f" {unit}" if unit else "")
        question_format = "open_ended"

    refs = ImageRefs()
    image_license = f"terms of the source dataset {metadata.get('source', 'unknown')!s}"
    if item.get("layout") == "parquet":
        image_name = p.get("image") or f"images/{pid}.jpg"
        ref = refs.add(f"{item['source_file']}#{image_name}", item["image_bytes"], image_license)
    else:
        root = item["image_root"]
        ref = refs.add(resolve_under(root, p.get("image")), None, image_license, root=root)

    text = question_text(question, unit, choices, format_hint(qtype, atype, precision, labels))
    field, subfield, rule = classify(metadata)
    return new_record(
        record_id=make_id(CATEGORY, SOURCE, pid),
        category=CATEGORY,
        field=field,
        subfield=subfield,
        question=[seg(text, ref)],
        answer=[seg(reference)],
        gt_answer=[seg(reference)],
        images=refs,
        provenance=provenance(SOURCE, item["split"], pid, LICENSE, item["source_file"]),
        source_metadata={
            "pid": pid,
            "question": question,
            "image": p.get("image"),
            "question_type": qtype,
            "answer": answer,
            "query": item.get("query"),
            "metadata": metadata,
            "layout": item.get("layout"),
            "field_rule": rule,
        },
        question_format=question_format,
        options=options_out,
        answer_type=atype,
        unit=unit,
        precision=precision,
        answer_value=answer_value,
    )
