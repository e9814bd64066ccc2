"""Pure parsing and restructuring for wikiHow (VGSI): no Beam in this module.

Input: ``WikihowText_data.json`` (JSON Lines despite its name: one article per line) and a
folder of step images ``<step_id>.png``, flat or split into ``train/`` and ``test/``.

Read unit: one (article, method). :func:`read_lines` turns the lines of one file into
``("item", item)`` or ``("dead", dead_letter)`` pairs such that every unit gives exactly one
of the two:

* a line that is not JSON is one unit (``malformed_json``); a line missing a required article
  key is one unit (``missing_key``); a line with wrongly typed article values is one unit
  (``bad_value``); an article with an empty ``methods`` list is one unit (``no_methods``);
* otherwise every method is one unit: an item, or a dead letter (``bad_value``,
  ``missing_key``, ``path_escapes_root`` for a step id that cannot be a file name).

Blank lines are not units and are skipped.

:func:`restructure` turns one item into a draft PBL record (see sources/wikihow/README.md):
question = [prompt], "<goal>? Method k: <name>", "Step 1: <headline> <description>" + image;
answer = the next ``max_answer_steps`` steps, each with its image or ``None``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from schemas.errors import PipelineConfigError, RecordError, as_record_error
from schemas.fs import join, list_dir_stems, require_path, safe_name
from schemas.records import (
    NULL_GT_ANSWER,
    ImageRefs,
    make_id,
    new_record,
    provenance,
    seg,
)
from schemas.taxonomy import source_table
from sources.base import Item, source_options

SOURCE = "wikihow"
CATEGORY = "PBL"
LICENSE = (
    "wikiHow text and images: wikiHow Creative Commons licence, commonly given as "
    "CC BY-NC-SA 3.0 (exact variant unverified); see each image's license"
)
DEFAULT_SPLIT = source_options("wikihow", {})["split"]
# Where step images are looked up, in order: the images folder itself, then train/, test/.
IMAGE_SUBFOLDERS = ("", "train", "test")

ARTICLE_KEYS = ("file_id", "goal", "category_hierarchy", "methods")
METHOD_KEYS = ("name", "steps")
STEP_KEYS = ("headline", "description", "step_id")


# --------------------------------------------------------------------------- images


def image_lookup(images_root: str) -> dict[str, str]:
    """Map step id (file stem) -> image URI over ``images_root``, ``train/`` and ``test/``.

    Each folder is listed once (``sources.base.list_dir_stems``); a folder that does not
    exist contributes nothing. When a stem occurs in several folders the first folder in
    :data:`IMAGE_SUBFOLDERS` order wins.
    """
    lookup: dict[str, str] = {}
    for sub in IMAGE_SUBFOLDERS:
        folder = join(images_root, sub) if sub else images_root
        for stem, path in list_dir_stems(folder).items():
            lookup.setdefault(stem, path)
    return lookup


# --------------------------------------------------------------------------- reading


def _where(
    source_file: str, line_no: int, method: int | None = None, step: int | None = None
) -> str:
    where = f"{source_file} line {line_no}"
    if method is not None:
        where += f", method {method}"
    if step is not None:
        where += f", step {step}"
    return where


def _id_string(value: Any, key: str, where: str) -> str:
    """An id given as a string (or an int in some dumps), returned as a non-empty string."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError("bad_value", f"{where}: {key} must be a string, got {value!r}")
    text = str(value)
    if not text:
        raise RecordError("bad_value", f"{where}: {key} is empty")
    return text


def _optional_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise RecordError("bad_value", f"{where}: {key} must be a string or null, got {value!r}")
    return value


def _require_keys(obj: Any, keys: tuple[str, ...], what: str, where: str) -> None:
    if not isinstance(obj, dict):
        raise RecordError("bad_value", f"{where}: {what} must be a JSON object, got {obj!r:.80}")
    for key in keys:
        if key not in obj:
            raise RecordError("missing_key", f"{where}: {what} has no key {key!r}")


def decode_line(raw: bytes | str, source_file: str, line_no: int) -> Any:
    """Decode one line (UTF-8, an optional BOM) as JSON.

    Raises:
        RecordError(malformed_json): not UTF-8 or not JSON.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text.lstrip("\ufeff"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # Recursion: too deep
        where = _where(source_file, line_no)
        raise RecordError("malformed_json", f"{where}: {type(exc).__name__}: {exc}") from exc


def check_article(article: Any, source_file: str, line_no: int) -> dict[str, Any]:
    """Check a decoded line's article keys and value types; returns the article.

    Raises:
        RecordError: ``missing_key`` (a required article key is absent), ``bad_value`` (not
        an object, or a value of the wrong type).
    """
    where = _where(source_file, line_no)
    _require_keys(article, ARTICLE_KEYS, "article", where)
    _id_string(article["file_id"], "file_id", where)
    goal = article["goal"]
    if not isinstance(goal, str) or not goal.strip():
        raise RecordError("bad_value", f"{where}: goal must be a non-empty string, got {goal!r}")
    _optional_str(article, "goal_description", where)
    hierarchy = article["category_hierarchy"]
    if not isinstance(hierarchy, list) or not all(isinstance(c, str) for c in hierarchy):
        raise RecordError(
            "bad_value", f"{where}: category_hierarchy must be a list of strings, got {hierarchy!r}"
        )
    if not isinstance(article["methods"], list):
        raise RecordError("bad_value", f"{where}: methods must be a list")
    return article


def parse_line(raw: bytes | str, source_file: str, line_no: int) -> dict[str, Any]:
    """Decode and check one JSON line (:func:`decode_line` + :func:`check_article`)."""
    return check_article(decode_line(raw, source_file, line_no), source_file, line_no)


def _parse_step(step: Any, where: str, lookup: dict[str, str]) -> dict[str, Any]:
    _require_keys(step, STEP_KEYS, "step", where)
    headline = step["headline"]
    if not isinstance(headline, str):
        raise RecordError("bad_value", f"{where}: headline must be a string, got {headline!r}")
    step_id = safe_name(_id_string(step["step_id"], "step_id", where), f"{where}: step_id")
    return {
        "step_id": step_id,
        "headline": headline,
        "description": _optional_str(step, "description", where),
        "img": _optional_str(step, "img", where),
        "img_license": _optional_str(step, "img_license", where),
        "image_uri": lookup.get(step_id),
    }


def method_item(
    article: dict[str, Any],
    m: int,
    *,
    source_file: str,
    line_no: int,
    lookup: dict[str, str],
    split: str,
    images_root: str,
) -> Item:
    """The item for method ``m`` (0-based) of a parsed article.

    Raises:
        RecordError: ``bad_value``, ``missing_key``, ``path_escapes_root``.
    """
    where = _where(source_file, line_no, m)
    method = article["methods"][m]
    _require_keys(method, METHOD_KEYS, "method", where)
    name, steps = method["name"], method["steps"]
    if not isinstance(name, str):
        raise RecordError("bad_value", f"{where}: name must be a string, got {name!r}")
    if not isinstance(steps, list):
        raise RecordError("bad_value", f"{where}: steps must be a list")
    file_id = str(article["file_id"])
    raw_method_id = method.get("method_id")
    derived = raw_method_id is None or raw_method_id == ""
    method_id = f"{file_id}_{m}" if derived else _id_string(raw_method_id, "method_id", where)
    parsed = [
        _parse_step(step, _where(source_file, line_no, m, s), lookup)
        for s, step in enumerate(steps)
    ]
    return {
        "source": SOURCE,
        "source_id": method_id,
        "split": split,
        "source_file": source_file,
        "line": line_no,
        "file_id": file_id,
        "goal": article["goal"],
        "goal_description": article.get("goal_description"),
        "category_hierarchy": list(article["category_hierarchy"]),
        "method_index": m,
        "n_methods": len(article["methods"]),
        "method_name": name,
        "method_id": method_id,
        "method_id_derived": derived,
        "steps": parsed,
        "images_root": images_root,
    }


def _line_source_id(source_file: str, line_no: int, article: Any = None) -> str:
    """The article's file_id when it has a usable one, else ``<file name>:<line>``."""
    file_id = article.get("file_id") if isinstance(article, dict) else None
    if isinstance(file_id, (str, int)) and not isinstance(file_id, bool) and str(file_id):
        return str(file_id)
    return f"{source_file.rsplit('/', 1)[-1]}:{line_no}"


def read_lines(
    lines: Iterable[bytes | str],
    source_file: str,
    lookup: dict[str, str],
    *,
    split: str = DEFAULT_SPLIT,
    images_root: str = "",
) -> Iterator[Item | RecordError]:
    """Yield every unit in ``lines``: its item, or a RecordError whose ``source_id`` names the
    unit (``sources.base``'s protocol).

    ``lines`` are the raw lines of one ``WikihowText_data.json`` (numbered from 1); blank
    lines are skipped. Any unexpected exception on a unit becomes that unit's
    ``unexpected_error`` instead of ending the file.
    """
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        decoded: Any = None
        try:
            decoded = decode_line(raw, source_file, line_no)
            article = check_article(decoded, source_file, line_no)
            if not article["methods"]:
                raise RecordError(
                    "no_methods", f"{_where(source_file, line_no)}: the article has no methods"
                )
        except Exception as exc:
            yield as_record_error(exc, _line_source_id(source_file, line_no, decoded))
            continue
        for m in range(len(article["methods"])):
            try:
                item = method_item(
                    article,
                    m,
                    source_file=source_file,
                    line_no=line_no,
                    lookup=lookup,
                    split=split,
                    images_root=images_root,
                )
            except Exception as exc:
                method = article["methods"][m]
                sid = f"{article['file_id']}_{m}"
                if isinstance(method, dict) and isinstance(method.get("method_id"), str):
                    sid = method["method_id"] or sid
                yield as_record_error(exc, sid)
                continue
            yield item


# --------------------------------------------------------------------------- mapping


def _norm(name: str) -> str:
    """Category-name key: lower case, '&' read as 'and', white space collapsed."""
    return re.sub(r"\s+", " ", name.replace("&", " and ")).strip().lower()


@functools.cache
def _category_table() -> dict[str, tuple[str, str, dict[str, str]]]:
    """normalised top-level name -> (field, default subfield, {normalised 2nd level: subfield})."""
    table = source_table(SOURCE)["top_level"]
    out: dict[str, tuple[str, str, dict[str, str]]] = {}
    for top, entry in table.items():
        second: dict[str, str] = {}
        for name, target in (entry.get("second_level") or {}).items():
            if target["field"] != entry["field"]:
                raise ValueError(f"fields.yaml: {top} / {name} leaves field {entry['field']}")
            second[_norm(name)] = target["subfield"]
        out[_norm(top)] = (entry["field"], entry["subfield"], second)
    return out


def map_category(hierarchy: list[str], where: str = "") -> tuple[str, str, bool]:
    """(field, subfield, fallback) for a category path; ``fallback`` is True when the second
    level is absent or unknown and the field's default subfield was used.

    Raises:
        RecordError(unmapped_category): the path is empty or its top level maps to no field.
    """
    if not hierarchy:
        raise RecordError("unmapped_category", f"{where}: category_hierarchy is empty")
    entry = _category_table().get(_norm(hierarchy[0]))
    if entry is None:
        raise RecordError(
            "unmapped_category",
            f"{where}: top-level category {hierarchy[0]!r} maps to no field "
            "(sources/wikihow/fields.yaml)",
        )
    field, default, second = entry
    sub = second.get(_norm(hierarchy[1])) if len(hierarchy) > 1 else None
    return (field, default, True) if sub is None else (field, sub, False)


# --------------------------------------------------------------------------- restructure


def heading(goal: str, k: int, method_name: str) -> str:
    """``"<goal>? Method k: <name>"``; the goal already reads "How to ...", and a goal that
    already ends in "?" gets no second one."""
    goal = goal.rstrip()
    head = goal if goal.endswith("?") else f"{goal}?"
    return f"{head} Method {k}: {method_name}" if method_name.strip() else f"{head} Method {k}"


def step_text(i: int, step: dict[str, Any]) -> str:
    """``"Step i: <headline> <description>"``; headline and description are kept raw."""
    parts = [step["headline"]]
    if step.get("description"):
        parts.append(step["description"])
    return f"Step {i}: " + " ".join(parts)


def restructure(item: Item, options: dict[str, Any]) -> dict[str, Any]:
    """One (article, method) item -> one draft PBL record.

    Raises:
        RecordError: ``unmapped_category``, ``too_few_steps`` (fewer than 2 steps),
        ``image_missing`` (no image for step 1: the question must have one).
    """
    where = _where(item["source_file"], item["line"], item["method_index"])
    field, subfield, fallback = map_category(item["category_hierarchy"], where)
    steps = item["steps"]
    if len(steps) < 2:
        raise RecordError("too_few_steps", f"{where}: {len(steps)} step(s); at least 2 needed")
    first = steps[0]
    if first["image_uri"] is None:
        raise RecordError(
            "image_missing",
            f"{where}: no image {first['step_id']}.* for step 1 in {item['images_root']} "
            "or its train/ and test/ subfolders",
        )
    options = source_options(SOURCE, options)
    max_answer = int(options["max_answer_steps"])
    answer_steps = steps[1 : 1 + max_answer]

    refs = ImageRefs()
    question = []
    prompt = options.get("prompt")
    if prompt:
        question.append(seg(text=prompt))
    k = item["method_index"] + 1
    question.append(seg(text=heading(item["goal"], k, item["method_name"])))
    root = item.get("images_root") or options.get("images")
    # each step's `img`: the wikiHow address VGSI publishes for its image
    ref = refs.add(
        first["image_uri"], license=first["img_license"], root=root, source_uri=first["img"]
    )
    question.append(seg(text=step_text(1, first), image=ref))
    answer = []
    missing: list[str] = []
    for i, step in enumerate(answer_steps, start=2):
        ref = None
        if step["image_uri"] is None:
            missing.append(step["step_id"])
        else:
            ref = refs.add(
                step["image_uri"], license=step["img_license"], root=root, source_uri=step["img"]
            )
        answer.append(seg(text=step_text(i, step), image=ref))

    used = [first, *answer_steps]
    hierarchy = item["category_hierarchy"]
    metadata = {
        "file_id": item["file_id"],
        "method_id": item["method_id"],
        "method_id_derived": item["method_id_derived"],
        "method_number": k,
        "method_name": item["method_name"],
        "n_methods": item["n_methods"],
        "goal": item["goal"],
        "goal_description": item["goal_description"],
        "category_hierarchy": list(hierarchy),
        "second_level_category": hierarchy[1] if len(hierarchy) > 1 else None,
        "subfield_fallback": fallback,
        "n_steps": len(steps),
        "n_answer_steps": len(answer_steps),
        "answer_truncated": len(steps) - 1 > len(answer_steps),
        "step_ids": [s["step_id"] for s in used],
        "step_image_urls": [s["img"] for s in used],
        "step_image_licenses": [s["img_license"] for s in used],
        "missing_step_images": missing,
        "line": item["line"],
    }
    return new_record(
        record_id=make_id(CATEGORY, SOURCE, item["method_id"]),
        category=CATEGORY,
        field=field,
        subfield=subfield,
        question=question,
        answer=answer,
        images=refs,
        provenance=provenance(
            SOURCE, item["split"], item["source_id"], LICENSE, item["source_file"]
        ),
        source_metadata=metadata,
        gt_answer=[dict(s) for s in NULL_GT_ANSWER],
    )


# --------------------------------------------------------------------------- options


def check_options(options: dict[str, Any]) -> None:
    """Config checks before launch.

    Raises:
        PipelineConfigError: ``text`` or ``images`` is unset or does not exist, or
        ``max_answer_steps`` is not a positive integer.
    """
    require_path(options, "text", SOURCE)
    require_path(options, "images", SOURCE)
    options = source_options(SOURCE, options)
    steps = options["max_answer_steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise PipelineConfigError(
            f"sources.{SOURCE}.max_answer_steps must be an integer >= 1, got {steps!r}"
        )
