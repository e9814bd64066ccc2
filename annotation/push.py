"""Route build records to Argilla: choose them, create the datasets, log them in batches.

    mmloom annotate push --build DIR --dataset NAME [--sample all|stratified|near-threshold]

Selection (:func:`select_records`):

* ``all``: every record of the build;
* ``stratified`` (``schemas.selection``, the rule ``publish --targets`` uses too): per
  category x field, the records with the smallest
  ``sha256(f"{seed}:{id}")``, as many as ``sizes`` says (``{"PBL": {"Health": 20, "*": 5}}``,
  ``"*"`` for the fields not named) or ``per_cell`` for every cell;
* ``near-threshold``: scored records whose CLIP ``min_score`` lies within ``margin`` of their
  category's threshold (the borderline calls a human should check).

Priority (``--priority audit``): records that a validity audit flagged (``audit.flags``) go
first. The sample takes every flagged record whatever its size (``all``: every record anyway;
``stratified``: each cell keeps all its flagged records and is topped up to its size with
unflagged ones in the seeded order, so a cell with more flagged records than its size sends
them all; ``near-threshold``: the records near the threshold plus every flagged record). Each
category's flagged records are logged before its unflagged ones. Argilla 2.8 shows each
annotator the pending records in an order of their own (Elasticsearch's ``random_score``
seeded by the user id, which mmloom's SQL engine keeps), so insertion order alone does not
reach annotators: the records carry the integer metadata ``audit_flags`` and push prints, per
dataset, the annotation link sorted by it, descending (``?sort=metadata.audit_flags.desc``),
which puts the flagged items first in annotation mode.

Pushing (:func:`push`) is idempotent and resumable: Argilla record ids are the mmloom ids, a
record is logged through Argilla's bulk *upsert*, and a record whose content hash
(``push_sha`` metadata) is already on the server is skipped. A push interrupted after some
batches therefore leaves no duplicates, and running it again sends only what is missing.
Responses already given are never touched.

Second round (:func:`read_needs_edit`): ``push --needs-edit DIR`` sends exactly the records
of ``DIR/needs_edit.jsonl`` (written by ``pull``) to a new round, with why each came back (in
words), the earlier annotators' answers (``DIR/responses.jsonl`` when present) and their
comments shown above the item. It must be a new round name: records keep
their responses in Argilla, so a record pushed again into its old dataset would stay complete.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import argilla as rg

from annotation.client import find_dataset, http, iter_raw_records
from annotation.render import audit_flags
from annotation.round_args import DEFAULT_BATCH_SIZE, PRIORITIES, SAMPLES
from annotation.rubric import Rubric
from annotation.settings import (
    AUDIT_METADATA,
    annotation_link,
    argilla_record,
    build_settings,
    dataset_name,
    item_sizes,
    per_item_kind,
    question_names,
)
from schemas import selection

log = logging.getLogger("mmloom.annotate")


class PushError(RuntimeError):
    """The push cannot go ahead; the message says what to change."""


@dataclass
class PushReport:
    """What a push did.

    Attributes:
        selected: records chosen, per category.
        pushed: records sent (created or updated), per category.
        unchanged: records already on the server with the same content, per category.
        batches: bulk requests sent.
        datasets: category -> Argilla dataset name.
        skipped: records not chosen by the sample and why (e.g. ``not_scored``).
        oversized: records with more images or sub-instructions than the existing dataset's
            choices offer (Argilla cannot add options to a question), per category.
        flagged: selected records with validity-audit flags, per category.
        links: category -> annotation-mode link sorted flagged first (``--priority audit``).
    """

    selected: Counter = field(default_factory=Counter)
    pushed: Counter = field(default_factory=Counter)
    unchanged: Counter = field(default_factory=Counter)
    batches: int = 0
    datasets: dict[str, str] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)
    oversized: Counter = field(default_factory=Counter)
    flagged: Counter = field(default_factory=Counter)
    links: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON view."""
        return {
            "selected": dict(self.selected),
            "pushed": dict(self.pushed),
            "unchanged": dict(self.unchanged),
            "batches": self.batches,
            "datasets": self.datasets,
            "skipped": dict(self.skipped),
            "oversized": dict(self.oversized),
            "flagged": dict(self.flagged),
            **({"links": self.links} if self.links else {}),
        }


def selection_key(record: dict[str, Any]) -> dict[str, Any]:
    """The little of a record that :func:`select_records` looks at (id, category, field,
    CLIP score, number of audit flags), so that choosing from a large build keeps only these
    in memory."""
    clip = (record.get("scores") or {}).get("clip") or {}
    return {
        "id": record["id"],
        "category": record["category"],
        "field": record["field"],
        "scores": {"clip": {"scored": clip.get("scored"), "min_score": clip.get("min_score")}},
        "n_flags": n_flags(record),
    }


def n_flags(record: dict[str, Any]) -> int:
    """How many validity-audit flags ``record`` (or its :func:`selection_key`) carries."""
    if "n_flags" in record:
        return int(record["n_flags"])
    return len(audit_flags(record))


def select_records(
    records: Iterable[dict[str, Any]],
    sample: str = "all",
    *,
    sizes: dict[str, dict[str, int]] | None = None,
    per_cell: int | None = None,
    seed: int = 0,
    thresholds: dict[str, float] | None = None,
    margin: float = 0.02,
    skipped: Counter | None = None,
    priority: str | None = None,
) -> list[dict[str, Any]]:
    """Choose the records to annotate; the order is deterministic (category, then id; with
    ``priority="audit"``: category, flagged records first, then id).

    Args:
        records: build records (JSON view).
        sample: ``all``, ``stratified`` or ``near-threshold``.
        sizes: stratified sizes per category x field (``"*"``: fields not named); a category
            not listed keeps ``per_cell`` (or nothing when ``per_cell`` is None).
        per_cell: stratified size of every cell not covered by ``sizes``.
        seed: seed of the stratified choice.
        thresholds: near-threshold: category -> CLIP threshold (``"*"``: any category).
        margin: near-threshold: keep records with ``|min_score - threshold| <= margin``.
        skipped: counter of records left out and why (filled in).
        priority: ``audit``: every flagged record is chosen whatever the sample, and flagged
            records come first within their category (see the module docstring).

    Raises:
        PushError: unknown sample or priority, or the sample's parameters are missing.
    """
    if priority is not None and priority not in PRIORITIES:
        raise PushError(f"unknown --priority {priority!r}; choose one of {', '.join(PRIORITIES)}")
    chosen = _select(records, sample, sizes, per_cell, seed, thresholds, margin, skipped, priority)
    if priority == "audit":
        return sorted(chosen, key=lambda r: (r["category"], n_flags(r) == 0, r["id"]))
    return chosen


def _select(
    records: Iterable[dict[str, Any]],
    sample: str,
    sizes: dict[str, dict[str, int]] | None,
    per_cell: int | None,
    seed: int,
    thresholds: dict[str, float] | None,
    margin: float,
    skipped: Counter | None,
    priority: str | None,
) -> list[dict[str, Any]]:
    """:func:`select_records` before the priority order (see there)."""
    skipped = skipped if skipped is not None else Counter()
    records = sorted(records, key=lambda r: (r["category"], r["id"]))
    audit = priority == "audit"
    if sample == "all":
        return records
    if sample == "stratified":
        if not sizes and per_cell is None:
            raise PushError("--sample stratified needs --sizes FILE or --per-cell N")
        chosen = []
        # a cell --sizes does not cover keeps --per-cell, or nothing without it
        default = per_cell if per_cell is not None else 0
        for cell in selection.stratify(records, sizes, seed, default=default):
            if audit and cell.size is not None:
                # every flagged record, then unflagged ones in rank order up to the size
                flagged = [r for r in cell.ranked if n_flags(r)]
                rest = [r for r in cell.ranked if not n_flags(r)]
                room = max(0, cell.size - len(flagged))
                chosen.extend(flagged + rest[:room])
                left = len(rest) - min(room, len(rest))
            else:
                chosen.extend(cell.kept)
                left = len(cell.left)
            if left:
                skipped["not_sampled"] += left
        return sorted(chosen, key=lambda r: (r["category"], r["id"]))
    if sample == "near-threshold":
        if not thresholds:
            raise PushError("--sample near-threshold needs --threshold VALUE or CATEGORY=VALUE")
        chosen = []
        for r in records:
            clip = (r.get("scores") or {}).get("clip") or {}
            threshold = thresholds.get(r["category"], thresholds.get("*"))
            if audit and n_flags(r):
                chosen.append(r)  # flagged: chosen whatever its score
            elif threshold is None:
                skipped["no_threshold"] += 1
            elif not clip.get("scored") or clip.get("min_score") is None:
                skipped["not_scored"] += 1
            elif abs(clip["min_score"] - threshold) <= margin:
                chosen.append(r)
            else:
                skipped["far_from_threshold"] += 1
        return chosen
    raise PushError(f"unknown --sample {sample!r}; choose one of {', '.join(SAMPLES)}")


def ensure_dataset(
    client: rg.Argilla,
    name: str,
    workspace: str | None,
    rubric: Rubric,
    category: str,
    overlap: int,
    sizes: Mapping[str, int] | None = None,
    audited: bool = False,
) -> rg.Dataset:
    """The dataset ``name`` (created from the rubric if missing; checked if present).

    A new dataset's per-item choices are sized by ``sizes`` (the largest item to push). An
    existing dataset made before records carried audit flags gets the ``audit_flags`` and
    ``audit_codes`` metadata properties when ``audited`` records are to go in (its
    ``audit_flags_hold`` question, if the rubric asks it, was there from the start).

    Raises:
        PushError: the existing dataset asks other questions than the rubric does, or it
            lacks the audit metadata that ``audited`` records need and Argilla refuses to
            add it.
    """
    dataset = find_dataset(client, name, workspace)
    if dataset is None:
        settings = build_settings(rubric, category, client, overlap, sizes)
        dataset = rg.Dataset(name=name, workspace=workspace, settings=settings, client=client)
        dataset.create()
        log.info("created dataset %s", name)
        return dataset
    want = list(rubric.categories[category])
    have = question_names(dataset)
    if have != want:
        raise PushError(
            f"dataset {name!r} exists with questions {have}, but the rubric asks {want}; push "
            "to a new --dataset name (or delete the old dataset in Argilla)"
        )
    have_meta = {m.name for m in dataset.settings.metadata}
    missing = [m for m in AUDIT_METADATA if m[0] not in have_meta]
    if audited and missing:
        # a dataset made before records carried audit flags: Argilla adds metadata
        # properties to a dataset that has records (it cannot add question options)
        for prop, title, kind in missing:
            response = http(client).post(
                f"/api/v1/datasets/{dataset.id}/metadata-properties",
                json={"name": prop, "title": title, "settings": {"type": kind}},
            )
            if response.status_code != 201:
                raise PushError(
                    f"dataset {name!r} has no {prop!r} metadata and Argilla refused to add it "
                    f"({response.status_code}); push the audited build to a new --dataset name"
                )
        log.info("%s: added the metadata %s", name, ", ".join(m[0] for m in missing))
        dataset = find_dataset(client, name, workspace) or dataset
    return dataset


def capacity(dataset: rg.Dataset, rubric: Rubric) -> dict[str, int]:
    """Per-item kind (``image``, ``sub``, ``check``) -> how many choices ``dataset`` offers."""
    out = {}
    for q in dataset.settings.questions:
        rq = rubric.questions.get(q.name)
        kind = per_item_kind(rq) if rq else None
        if kind:
            out[kind] = len(q.labels)
    return out


def oversize_note(record: dict[str, Any], offered: Mapping[str, int]) -> list[str]:
    """Lines telling annotators which of ``record``'s images or checks the dataset's choices
    do not cover (empty when all are covered)."""
    need = item_sizes(record)
    what = {"image": "images", "sub": "sub-instructions", "check": "checks", "flag": "audit flags"}
    return [
        f"This item has {need[k]} {what[k]} but the choices below stop at {k}_{offered[k]}: "
        f"name any of {k}_{offered[k] + 1}..{k}_{need[k]} in the comment."
        for k in sorted(offered)
        if need[k] > offered[k]
    ]


def existing_hashes(client: rg.Argilla, dataset: rg.Dataset) -> dict[str, str | None]:
    """external id -> ``push_sha`` of the records already in ``dataset``."""
    out = {}
    for item in iter_raw_records(client, dataset.id):
        meta = item.get("metadata") or {}
        out[item["external_id"]] = meta.get("push_sha")
    return out


def _batches(
    records: Iterable[dict[str, Any]],
    category: str,
    have: dict[str, str | None],
    rubric: Rubric,
    image_url: Callable[[str], str],
    batch_size: int,
    report: PushReport,
    offered: Mapping[str, int],
    notes: Mapping[str, dict[str, Any]],
):
    """Batches of Argilla records of ``category`` that differ from what the server has,
    each with the number of the category's records handled so far."""
    batch: list[Any] = []
    handled = 0
    for r in records:
        if r["category"] != category:
            continue
        report.selected[category] += 1
        report.flagged[category] += n_flags(r) > 0
        handled += 1
        note = dict(notes.get(r["id"]) or {})
        extra = oversize_note(r, offered)
        if extra:
            report.oversized[category] += 1
            note["extra"] = extra
        rec = argilla_record(r, rubric, image_url, note or None)
        if have.get(rec.id) == rec.metadata["push_sha"]:
            report.unchanged[category] += 1
            continue
        batch.append(rec)
        if len(batch) >= batch_size:
            yield batch, handled
            batch = []
    if batch:
        yield batch, handled


def push(
    client: rg.Argilla,
    records: Iterable[dict[str, Any]] | Callable[[], Iterable[dict[str, Any]]],
    dataset: str,
    rubric: Rubric,
    image_url: Callable[[str], str],
    *,
    workspace: str | None = None,
    overlap: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[str, int, int], None] | None = None,
    report: PushReport | None = None,
    notes: Mapping[str, dict[str, Any]] | None = None,
    priority: str | None = None,
) -> PushReport:
    """Log ``records`` into the per-category datasets of the round ``dataset``.

    Records are streamed: with a callable, ``records()`` is called once to count categories
    and once per category to send its records, so a build is read again rather than held
    in memory; at most one batch of Argilla records exists at a time.

    Args:
        client: Argilla client.
        records: the selected build records (JSON view): an iterable read once per category
            (a list), or a callable returning a fresh iterable each time.
        dataset: round name; each category goes to ``<dataset>-<category>``.
        rubric: the rubric (settings and suggestions).
        image_url: record image path -> URL for the annotator's browser.
        workspace: Argilla workspace (None: the key's default workspace).
        overlap: submitted responses per record (default: the rubric's).
        batch_size: records per bulk request (at most 500).
        on_batch: called after each batch with (category, records handled so far in this
            category, records selected in this category).
        report: a report to fill (default: a new one).
        notes: record id -> notes shown above the item (a second round: ``why`` and
            ``comments`` from :func:`read_needs_edit`).
        priority: ``audit``: log each category's flagged records before the others and put
            the flagged-first annotation link of each dataset in ``report.links``.

    Raises:
        PushError: a record's category has no rubric, or a dataset does not fit the rubric.
    """
    report = report or PushReport()
    batch_size = max(1, min(batch_size, 500))
    overlap = overlap or rubric.overlap
    if callable(records):
        source = records
    else:
        kept = records if isinstance(records, list) else list(records)

        def source() -> Iterable[dict[str, Any]]:
            return kept

    sizes: Counter = Counter()
    largest: dict[str, dict[str, int]] = {}  # category -> the largest item's sizes
    audited: set[str] = set()  # categories with audited records
    for r in source():
        sizes[r["category"]] += 1
        if r.get("audit") is not None:
            audited.add(r["category"])
        top = largest.setdefault(r["category"], {})
        for kind, n in item_sizes(r).items():
            top[kind] = max(top.get(kind, 0), n)
    missing = sorted(set(sizes) - set(rubric.categories))
    if missing:
        raise PushError(
            f"the rubric {rubric.source} has no questions for {missing}; add them to `categories`"
        )
    for category in sorted(sizes):
        name = dataset_name(dataset, category)
        report.datasets[category] = name
        ds = ensure_dataset(
            client, name, workspace, rubric, category, overlap, largest[category],
            audited=category in audited,
        )  # fmt: skip
        have = existing_hashes(client, ds)
        offered = capacity(ds, rubric)
        ordered: Iterable[dict[str, Any]] = source()
        if priority == "audit":  # flagged records are logged first (two passes over the source)
            ordered = itertools.chain(
                (r for r in source() if n_flags(r)), (r for r in source() if not n_flags(r))
            )
            report.links[category] = annotation_link(str(http(client).base_url), ds.id)
        for batch, handled in _batches(
            ordered, category, have, rubric, image_url, batch_size, report, offered, notes or {}
        ):
            ds.records.log(batch, batch_size=len(batch))
            report.batches += 1
            report.pushed[category] += len(batch)
            log.info("%s: %d/%d records handled", name, handled, sizes[category])
            if on_batch:
                on_batch(category, handled, sizes[category])
        if report.oversized[category]:
            log.warning(
                "%s: %d records have more images or sub-instructions than the dataset's "
                "choices (%s; Argilla cannot add options to a question); their items ask "
                "annotators to use the comment. Push to a new --dataset for full choices.",
                name, report.oversized[category], offered,
            )  # fmt: skip
    return report


RESPONSES_FILE = "responses.jsonl"


def read_needs_edit(
    path: str | os.PathLike, skip_questions: Iterable[str] = (), order: Iterable[str] = ()
) -> dict[str, dict[str, Any]]:
    """The records a pull sent back: ``path`` is the pull's output folder or its
    ``needs_edit.jsonl``; returns record id -> ``{"why", "comments", "answers", ...}``.

    ``answers`` (annotator -> question -> value, shown to the new round) come from the
    pull's ``responses.jsonl`` beside it when present (one line per response value:
    ``record_id``, ``dataset``, ``annotator``, ``question``, ``value``, ``status``,
    ``updated_at``; submitted responses only, the latest per annotator and question,
    ``skip_questions`` left out, e.g. the free-text comment shown with the comments; the
    questions named in ``order`` first, in that order, e.g. the rubric's); otherwise the
    needs_edit line's own ``answers`` (the taxonomy questions) stay.

    Raises:
        PushError: the file is missing or a line is not a JSON object with an ``id``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "needs_edit.jsonl")
    out = {}
    for n, obj in _jsonl_objects(
        path, "--needs-edit takes the --output folder of `mmloom annotate pull`"
    ):
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
            raise PushError(f"{path} line {n}: not a JSON object with an 'id'")
        out[obj["id"]] = obj
    responses = os.path.join(os.path.dirname(path), RESPONSES_FILE)
    if os.path.exists(responses):
        answers = _earlier_answers(responses, out, set(skip_questions), list(order))
        for rid, note in out.items():
            if answers.get(rid):
                note["answers"] = answers[rid]
    return out


def _jsonl_objects(path: str, hint: str) -> list[tuple[int, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
    except OSError as exc:
        raise PushError(f"cannot read {path} ({exc.strerror}); {hint}") from None
    out = []
    for n, line in lines:
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError:
            out.append((n, None))
    return out


def _earlier_answers(
    path: str, notes: Mapping[str, dict[str, Any]], skip: set[str], order: list[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """record id -> annotator -> question -> value from a pull's ``responses.jsonl``."""
    latest: dict[tuple[str, str, str], tuple[str, Any]] = {}
    for n, obj in _jsonl_objects(path, "it is written by `mmloom annotate pull`"):
        keys = ("record_id", "annotator", "question")
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) for k in keys):
            raise PushError(
                f"{path} line {n}: not a JSON object with record_id, annotator and question"
            )
        note = notes.get(obj["record_id"])
        if note is None or obj.get("status") != "submitted" or obj["question"] in skip:
            continue
        key = (obj["record_id"], obj["annotator"], obj["question"])
        stamp = str(obj.get("updated_at") or "")
        if key not in latest or stamp >= latest[key][0]:
            latest[key] = (stamp, obj.get("value"))
    rank = {q: i for i, q in enumerate(order)}
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for (rid, annotator, question), (_, value) in sorted(
        latest.items(), key=lambda kv: (kv[0][0], kv[0][1], rank.get(kv[0][2], len(rank)), kv[0][2])
    ):
        out[rid][annotator][question] = value
    return {rid: {a: dict(q) for a, q in by.items()} for rid, by in out.items()}
