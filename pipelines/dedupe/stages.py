"""The dedupe stages of ``mmloom build``: image clusters, over-used images, duplicate items.

Input: finished, valid records. The stages read only image metadata (``sha256``, ``phash``,
``width``, ``height``, ``path``) and record text, never image bytes, and move small keys
around; records pass through once, in :class:`ApplyDedupeFn`, which reads the decisions as
side inputs.

1. **Image clusters.** Images are the same picture when their bytes are equal (sha256:
   paths are content-addressed, so this is one image) or when their 64-bit pHashes differ in
   at most ``k`` bits. Near pairs come from multi-index hashing (``hamming.band_keys``: k+1
   bands, one ``GroupByKey``, verify on all 64 bits; exact recall). Extra edges, e.g. CLIP
   embedding near-duplicates, can join the same graph. Union-find, in one worker (what must
   fit there, measured at a million images: :class:`DedupeRecords`), turns edges into
   clusters; each cluster's canonical image is the one with most pixels, then the smallest
   sha256.
2. **Frequency rule.** A cluster used by more than ``max_image_uses`` records is a logo, a
   placeholder or a stock picture: its images are dropped from every record, and the record
   with them (``on_bad_image: drop_record``) or just their segments (``drop_segment``, while
   the question keeps an image). The default (50) sits far above the legitimate reuse
   measured on the real development halves (README, "Images and duplicates").
3. **Item identity.** Two records are the same item when a model would be given the same
   question: every question image, in order, in the same cluster, and the same question text
   (without the source's fixed prompt) after normalisation (``text.normalise``). For
   ``text_categories`` records of at least ``text_min_words`` words a near-equal text also
   counts: word 5-gram Jaccard >= ``text_jaccard`` computed on the pair, with the same
   numbers. Records are grouped by their question images (one ``GroupByKey``: no all-pairs)
   and taken in id order; each is compared with the records already kept in its group
   (:func:`decide_group`), so the smallest id stays and a record is dropped only for a
   verified identity with the record that stays, never through a chain. Two copies of one
   item with different reference answers are a label conflict: the later one is a dead
   letter naming both ids and both answers, listed in stats.json (``label_conflict_list``).
   Duplicates across sources are listed under ``leakage``; an image shared by records of two
   sources whose questions differ is listed under ``shared_images`` and dropped from nothing.

Dead letters: stage ``dedupe``, reasons :class:`DedupeReason`; the detail names the kept id.
Counters (``DedupeRecords``): ``out``, ``dropped_<reason>``,
``images_dropped_image_too_frequent``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.pvalue import TaggedOutput

from pipelines.config import DedupeConfig
from pipelines.dedupe import hamming, text
from pipelines.images import DROP_SEGMENT
from schemas.deadletter import DEAD, STAGE_DEDUPE, UNIT_IMAGE
from schemas.records import Record
from schemas.stage import RecordStage, StageFn, StageReason

MAX_LEAKAGE_LISTED = 1000
MAX_SHARED_RECORDS = 10


class DedupeReason(StageReason):
    """Why ``DedupeRecords`` drops a record (or, for an over-used image, one image)."""

    DUPLICATE_ITEM = (
        "duplicate_item",
        "the same question images and equal question text as a kept record",
    )
    DUPLICATE_ITEM_NEAR_TEXT = (
        "duplicate_item_near_text",
        "the same question images and a near-equal question text (word 5-gram Jaccard >= "
        "`dedupe.text_jaccard`, the same numbers)",
    )
    LABEL_CONFLICT = (
        "label_conflict",
        "the same item as a kept record with another reference answer; the detail names both",
    )
    IMAGE_TOO_FREQUENT = (
        "image_too_frequent",
        "an image (cluster) used by more than `dedupe.max_image_uses` records: the record, or "
        "under `drop_segment` the image",
    )


REASON_DUPLICATE = DedupeReason.DUPLICATE_ITEM
REASON_NEAR = DedupeReason.DUPLICATE_ITEM_NEAR_TEXT
REASON_CONFLICT = DedupeReason.LABEL_CONFLICT


# ---------------------------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------------------------


def image_keys(record: Record) -> list[tuple[str, str, int]]:
    return [
        (im["sha256"], im["phash"], im["width"] * im["height"])
        for im in record["images"]
        if im.get("phash")
    ]


def band_entries(key: tuple[str, str, int], k: int):
    sha, phash, pixels = key
    h = int(phash, 16)
    for band in hamming.band_keys(h, k):
        yield band, (sha, h, pixels)


def verify_group(group: list[tuple[str, int, int]], k: int):
    """Edges ``((sha, pixels), (sha, pixels))`` of one band group within distance ``k``."""
    members = sorted(set(group))
    if len(members) < 2:
        return
    hashes = np.array([m[1] for m in members], dtype=np.uint64)
    for i, j, _ in hamming.pairs_within(hashes, k):
        a, b = members[i], members[j]
        yield ((a[0], a[2]), (b[0], b[2])) if a[0] < b[0] else ((b[0], b[2]), (a[0], a[2]))


def image_clusters(edges: list[tuple[tuple[str, int], tuple[str, int]]]) -> dict[str, Any]:
    """Union-find over image edges: ``{"canonical": {sha: canonical sha}, "sizes": {n: count}}``.

    Only images in clusters of two or more appear in ``canonical``.
    """
    pixels: dict[str, int] = {}
    for (a, pa), (b, pb) in edges:
        pixels[a], pixels[b] = pa, pb
    canonical: dict[str, str] = {}
    sizes: Counter = Counter()
    for members in hamming.clusters((a, b) for (a, _), (b, _) in edges):
        best = min(members, key=lambda s: (-pixels[s], s))
        for m in members:
            canonical[m] = best
        sizes[len(members)] += 1
    return {"canonical": canonical, "sizes": {str(n): c for n, c in sorted(sizes.items())}}


def record_summary(
    record: Record, clusters: dict[str, Any], dedupe: DedupeConfig
) -> dict[str, Any]:
    """The small view of a record that the item-level decisions need.

    ``question_images`` is the canonical cluster of every question image, in question order;
    ``question`` the normalised question text (without the source's fixed prompt); ``near``
    whether near-equal texts may match (a ``text_categories`` record of at least
    ``text_min_words`` words); ``answer_key`` what must be equal for two copies of one item
    to agree on the reference (normalised answer text and answer image clusters).
    """
    canon = clusters["canonical"]
    by_path = {im["path"]: im["sha256"] for im in record["images"]}

    def cluster(path: str) -> str:
        return canon.get(by_path[path], by_path[path])

    question = text.normalise(text.question_text(record))
    answer = text.answer_text(record)
    return {
        "id": record["id"],
        "source": record["provenance"]["source"],
        "category": record["category"],
        "question_images": [cluster(s["image"]) for s in record["question"] if s["image"]],
        "all_clusters": sorted({canon.get(im["sha256"], im["sha256"]) for im in record["images"]}),
        "question": question,
        "near": record["category"] in dedupe.text_categories
        and len(question.split()) >= dedupe.text_min_words,
        "answer": answer,
        "answer_key": [
            text.normalise(answer),
            [cluster(s["image"]) for s in record["answer"] if s["image"]],
        ],
    }


def survives_frequency(summary: dict[str, Any], frequent: set[str], policy: str) -> bool:
    """Would the record still be written after the frequency rule?"""
    if not frequent.intersection(summary["all_clusters"]):
        return True
    if policy != DROP_SEGMENT:
        return False
    return any(c not in frequent for c in summary["question_images"])


def image_signature(summary: dict[str, Any], frequent: set[str]) -> tuple[str, ...]:
    """The question images that identify the item: their clusters in order, without the
    over-used ones (which ``drop_segment`` removes from the question)."""
    return tuple(c for c in summary["question_images"] if c not in frequent)


def _same_text(a: dict[str, Any], b: dict[str, Any], threshold: float, cache: dict) -> float | None:
    """1.0 when the normalised question texts are equal; their verified word 5-gram Jaccard
    when both may match near-equal, it reaches ``threshold`` and their numbers agree; else
    None."""
    if a["question"] == b["question"]:
        return 1.0
    if not (a["near"] and b["near"]):
        return None
    if text.numbers(a["question"]) != text.numbers(b["question"]):
        return None
    for s in (a, b):
        if s["id"] not in cache:
            cache[s["id"]] = text.shingles(s["question"])
    similarity = text.jaccard(cache[a["id"]], cache[b["id"]])
    return similarity if similarity >= threshold else None


def decide_group(members: list[dict[str, Any]], threshold: float):
    """Item decisions for records with the same question images (one ``GroupByKey`` group).

    Records are taken in id order. A record whose question text is the same as that of a
    record already kept (equal, or verified near-equal: :func:`_same_text`) is a duplicate of
    that kept record (the smallest such id); otherwise it is kept. Every drop is thus verified
    against the record that stays; nothing is dropped through a chain of other pairs.

    Yields ``(id, decision)`` for every dropped record; ``decision`` holds ``kept``,
    ``reason`` (``duplicate_item``, ``duplicate_item_near_text`` or ``label_conflict``),
    ``similarity``, both sources and both answers.
    """
    kept: list[dict[str, Any]] = []
    exact: dict[str, dict[str, Any]] = {}
    cache: dict[str, set[str]] = {}
    for m in sorted(members, key=lambda s: s["id"]):
        match, similarity = exact.get(m["question"]), 1.0
        if match is None:
            for k in kept:
                found = _same_text(m, k, threshold, cache)
                if found is not None:
                    match, similarity = k, found
                    break
        if match is None:
            kept.append(m)
            exact[m["question"]] = m
            continue
        if m["answer_key"] != match["answer_key"]:
            reason = REASON_CONFLICT
        elif similarity == 1.0:
            reason = REASON_DUPLICATE
        else:
            reason = REASON_NEAR
        yield (
            m["id"],
            {
                "kept": match["id"],
                "reason": str(reason),  # a plain string: it goes to stats.json
                "similarity": round(similarity, 4),
                "source": m["source"],
                "kept_source": match["source"],
                "answer": m["answer"],
                "kept_answer": match["answer"],
            },
        )


def drop_detail(record_id: str, d: dict[str, Any]) -> str:
    """The dead-letter detail of a dropped record: the kept id, and why."""
    how = (
        "equal question text"
        if d["similarity"] == 1.0
        else f"near-equal question text (word 5-gram Jaccard {d['similarity']})"
    )
    if d["reason"] == REASON_CONFLICT:
        return (
            f"{record_id} is the same item as {d['kept']} (same question images, {how}) with "
            f"another answer: {d['kept']} (kept) answers {_quote(d['kept_answer'])}, "
            f"{record_id} answers {_quote(d['answer'])}"
        )
    return f"{record_id} duplicates {d['kept']}: same question images, {how}"


def _quote(answer: str, limit: int = 200) -> str:
    return repr(answer if len(answer) <= limit else answer[:limit] + "...")


def summarise_decisions(decisions: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The report part of the item decisions: counts per reason, label conflicts, and the
    duplicates found across sources (``leakage``)."""
    reasons: Counter = Counter()
    conflicts: list[dict[str, Any]] = []
    leakage: list[dict[str, str]] = []
    leak_counts: Counter = Counter()
    for record_id, d in sorted(decisions, key=lambda x: x[0]):
        reasons[d["reason"]] += 1
        if d["reason"] == REASON_CONFLICT:
            conflicts.append(
                {
                    "kept": d["kept"],
                    "kept_answer": d["kept_answer"],
                    "dropped": record_id,
                    "dropped_answer": d["answer"],
                    "similarity": d["similarity"],
                }
            )
        if d["source"] != d["kept_source"]:
            pair = "/".join(sorted((d["source"], d["kept_source"])))
            leak_counts[pair] += 1
            if len(leakage) < MAX_LEAKAGE_LISTED:
                leakage.append(
                    {"kept": d["kept"], "dropped": record_id, "sources": pair, "via": d["reason"]}
                )
    return {
        "duplicate_items": dict(sorted(reasons.items())),
        "label_conflicts": len(conflicts),
        "label_conflict_list": conflicts[:MAX_LEAKAGE_LISTED],
        "leakage_counts": dict(sorted(leak_counts.items())),
        "leakage": leakage,
    }


def shared_image(kv: tuple[str, Any]):
    """A cross-source shared image (one cluster used by records of two or more sources):
    listed in the leakage report, never a reason to drop."""
    cluster, users = kv
    users = sorted(set(users))
    sources = sorted({source for source, _ in users})
    if len(sources) > 1:
        yield {
            "image": cluster,
            "sources": "/".join(sources),
            "records": [rid for _, rid in users[:MAX_SHARED_RECORDS]],
            "n_records": len(users),
        }


def drop_frequent(
    record: Record, frequent: set[str], canonical: dict[str, str], policy: str
) -> tuple[Record | None, list[str]]:
    """Remove over-used images; returns (record or None when it must go, dropped paths)."""
    bad = {
        im["path"]
        for im in record["images"]
        if canonical.get(im["sha256"], im["sha256"]) in frequent
    }
    if not bad:
        return record, []
    if policy != DROP_SEGMENT:
        return None, sorted(bad)
    out = dict(record)
    for key in ("question", "answer", "gt_answer"):
        segs = []
        for s in record[key]:
            if s["image"] in bad:
                if s["text"] is None:
                    continue
                s = {"text": s["text"], "image": None}
            segs.append(s)
        out[key] = segs
    out["images"] = [im for im in record["images"] if im["path"] not in bad]
    if not any(s["image"] for s in out["question"]) or not out["answer"]:
        return None, sorted(bad)
    return out, sorted(bad)


# ---------------------------------------------------------------------------------------------
# Beam
# ---------------------------------------------------------------------------------------------


class ApplyDedupeFn(StageFn):
    """Applies the decisions: duplicate items and over-used images become dead letters."""

    def __init__(self, policy: str, max_uses: int) -> None:
        self._policy = policy
        self._max_uses = max_uses

    def process_element(
        self,
        record: Record,
        clusters: dict[str, Any],
        frequent: list[str],
        decisions: dict[str, dict[str, Any]],
    ) -> Iterator[Record | TaggedOutput]:
        prov = record["provenance"]
        source, sid = prov["source"], prov["source_id"]
        decision = decisions.get(record["id"])
        if decision is not None:
            reason = decision["reason"]
            detail = drop_detail(record["id"], decision)
            yield self.reject(reason, source, sid, detail)
            return
        kept_record, dropped = drop_frequent(
            record, set(frequent), clusters["canonical"], self._policy
        )
        detail = f"used by more than {self._max_uses} records"
        if kept_record is None:
            yield self.reject(DedupeReason.IMAGE_TOO_FREQUENT, source, sid, f"{dropped}: {detail}")
            return
        for path in dropped:
            yield self.reject(
                DedupeReason.IMAGE_TOO_FREQUENT,
                source,
                sid,
                f"{path}: {detail}",
                unit=UNIT_IMAGE,
            )
        self.count("out")
        yield kept_record


class WithPixels(beam.PTransform):
    """``(sha_a, sha_b, score)`` edges -> ``((sha, pixels), (sha, pixels))`` like pHash edges.

    Two joins with the image keys (sha, phash, pixels), so no map of every image's size has
    to fit in one worker's memory.
    """

    def __init__(self, keys) -> None:
        super().__init__()
        self._keys = keys

    def expand(self, edges):
        pixels = self._keys | "PixelsBySha" >> beam.Map(lambda k: (k[0], k[2]))

        def first(kv):
            sha, groups = kv
            for px in list(groups["px"])[:1]:
                for other in groups["edge"]:
                    yield other, (sha, px)

        def second(kv):
            sha, groups = kv
            for px in list(groups["px"])[:1]:
                for a, pa in groups["edge"]:
                    yield ((a, pa), (sha, px)) if a < sha else ((sha, px), (a, pa))

        by_first = edges | "KeyByFirst" >> beam.Map(lambda e: (e[0], e[1]))
        half = (
            {"px": pixels, "edge": by_first} | "JoinFirst" >> beam.CoGroupByKey()
        ) | "SizeFirst" >> beam.FlatMap(first)
        return (
            {"px": pixels, "edge": half} | "JoinSecond" >> beam.CoGroupByKey()
        ) | "SizeSecond" >> beam.FlatMap(second)


class ClusterImages(beam.PTransform):
    """Step 1: records -> their distinct image keys and the image clusters.

    Args:
        k: pHash Hamming distance of near-duplicates.
        extra_image_edges: optional more edges ``(sha_a, sha_b, score)`` (CLIP embedding
            near-duplicates), joined with the pHash edges before clustering.
    Output: a dict: ``keys`` (distinct ``(sha256, phash, pixels)``) and ``clusters`` (one
    element, :func:`image_clusters`'s ``{"canonical", "sizes"}``).

    What must fit in one worker: every distinct edge (``GatherImageEdges >> ToList``: the
    union-find runs on one worker), about 470 bytes each there, and the clusters'
    ``canonical`` map (a side input of every later step), about 260 bytes per image that has
    a near-duplicate. Measured figures: :class:`DedupeRecords`.
    """

    def __init__(self, k: int, extra_image_edges: beam.PCollection | None = None) -> None:
        super().__init__()
        self._k = k
        self._extra = extra_image_edges

    def expand(self, records: beam.PCollection[Record]) -> dict[str, beam.PCollection]:
        k = self._k
        keys = (
            records | "ImageKeys" >> beam.FlatMap(image_keys) | "DistinctImages" >> beam.Distinct()
        )
        edges = (
            keys
            | "BandKeys" >> beam.FlatMap(band_entries, k)
            | "GroupBands" >> beam.GroupByKey()
            | "VerifyBands" >> beam.FlatMap(lambda kv: verify_group(list(kv[1]), k))
        )
        if self._extra is not None:
            extra = self._extra | "SizeExtraEdges" >> WithPixels(keys)
            edges = (edges, extra) | "AddImageEdges" >> beam.Flatten()
        clusters = (
            edges
            | "DistinctEdges" >> beam.Distinct()
            | "GatherImageEdges" >> beam.combiners.ToList()
            | "ClusterImages" >> beam.Map(image_clusters)
        )
        return {"keys": keys, "clusters": clusters}


class DecideItems(beam.PTransform):
    """Step 2: the frequency rule and the duplicate-item decisions (no record changes yet).

    Args:
        dedupe: the ``dedupe`` block; policy: ``images.on_bad_image``;
        clusters: step 1's ``clusters`` (a side input).
    Output: a dict: ``frequent`` (one sorted list of over-used clusters), ``decisions``
    (``(id, decision)`` of every dropped record), ``use_histogram``, ``decided`` (their
    summary for the report) and ``shared`` (images shared across sources), the last three one
    element each.

    What must fit in one worker: the over-used clusters (a side input), and every decision
    (``GatherDecisions`` lists them for the report, and step 3 reads them as ``AsDict``, a
    side input broadcast to every worker): one dict per dropped record, about 1.2 KB.
    Measured figures: :class:`DedupeRecords`.
    """

    def __init__(self, dedupe: DedupeConfig, policy: str, clusters: beam.PCollection) -> None:
        super().__init__()
        self._dedupe = dedupe
        self._policy = policy
        self._clusters = clusters

    def expand(self, records: beam.PCollection[Record]) -> dict[str, beam.PCollection]:
        dedupe, policy = self._dedupe, self._policy
        max_uses, jaccard = dedupe.max_image_uses, dedupe.text_jaccard
        clusters_side = beam.pvalue.AsSingleton(self._clusters)
        summaries = records | "Summarise" >> beam.Map(record_summary, clusters_side, dedupe)
        uses = (
            summaries
            | "ClusterUses" >> beam.FlatMap(lambda s: s["all_clusters"])
            | "CountUses" >> beam.combiners.Count.PerElement()
        )
        frequent = (
            uses
            | "OverUsed" >> beam.Filter(lambda kv: kv[1] > max_uses)
            | "OverUsedIds" >> beam.Map(lambda kv: kv[0])
            | "GatherOverUsed" >> beam.combiners.ToList()
            | "SortOverUsed" >> beam.Map(sorted)
        )
        frequent_side = beam.pvalue.AsSingleton(frequent)
        use_histogram = (
            uses
            | "UsesPerImage" >> beam.Map(lambda kv: kv[1])
            | "CountUsesPerImage" >> beam.combiners.Count.PerElement()
            | "GatherUseHistogram" >> beam.combiners.ToList()
            | "SortUseHistogram" >> beam.Map(lambda kvs: {str(n): c for n, c in sorted(kvs)})
        )
        candidates = summaries | "Survivors" >> beam.Filter(
            lambda s, f: survives_frequency(s, set(f), policy), frequent_side
        )
        decisions = (
            candidates
            | "BySignature" >> beam.Map(lambda s, f: (image_signature(s, set(f)), s), frequent_side)
            | "GroupBySignature" >> beam.GroupByKey()
            | "DecideItems" >> beam.FlatMap(lambda kv: decide_group(list(kv[1]), jaccard))
        )
        decided = (
            decisions
            | "GatherDecisions" >> beam.combiners.ToList()
            | "SummariseDecisions" >> beam.Map(summarise_decisions)
        )
        shared = (
            candidates
            | "ImageUsers"
            >> beam.FlatMap(lambda s: [(c, (s["source"], s["id"])) for c in s["all_clusters"]])
            | "GroupImageUsers" >> beam.GroupByKey()
            | "SharedAcrossSources" >> beam.FlatMap(shared_image)
            | "GatherShared" >> beam.combiners.ToList()
            | "SortShared"
            >> beam.Map(lambda xs: sorted(xs, key=lambda x: (x["sources"], x["image"])))
        )
        return {
            "frequent": frequent,
            "decisions": decisions,
            "use_histogram": use_histogram,
            "decided": decided,
            "shared": shared,
        }


class DedupeRecords(RecordStage):
    """Image clusters, the frequency rule and duplicate items (see the module docstring), in
    three steps: :class:`ClusterImages`, :class:`DecideItems`, then ``ApplyDedupe``
    (:class:`ApplyDedupeFn`: every record once, the decisions as side inputs).

    Args:
        dedupe: the ``dedupe`` block of the build config.
        on_bad_image: the ``images.on_bad_image`` policy (for over-used images).
        extra_image_edges: optional PCollection of more image edges ``(sha_a, sha_b, score)``
            (CLIP embedding near-duplicates); they join the pHash edges before clustering.
    Input: valid ``Record``. Output: ``records`` (kept ``Record``), ``DEAD`` (``DeadLetter``),
    and ``report``: one ``{"dedupe": {...}}`` dict for stats.json.

    The search is spread by Beam, but these must fit in one worker's memory. They grow with
    the near-duplicates, not with the images, and were measured at 1,000,000 images
    (``bench/dedupe_one_worker.py``: the stage's own functions and Beam's coder;
    bench/RESULTS.md, 2026-12-07) with 10% of the images in near-duplicate clusters of 2-4
    (40,012 clusters), and with 30%:

    * every distinct image edge: ``GatherImageEdges >> ToList`` collects them all in one
      worker for the union-find (:func:`image_clusters`). An edge is about 470 bytes there
      (150 encoded), and a cluster of s images all within k of each other is s(s-1)/2
      edges. 10%: 84,019 edges, 37 MB as the list, 55 MB at the peak of the union-find,
      3.2 s on a shared 2-core VM (3.6% of the banded search's time in the same run);
      30%: 252,162 edges, 112 MB, 155 MB, 11.4 s (10.5%);
    * the ``canonical`` map (one entry per image in a cluster, about 260 bytes), a side input
      that every worker holds: 10%: 25 MB; 30%: 72 MB;
    * every decision: ``AsDict(decisions)`` gives every worker that applies them one dict
      per dropped record (about 1.2 KB), and ``GatherDecisions`` lists them for the report.
      The benchmark drops one record per clustered image beyond the first of its cluster
      (an upper bound): 60,000 decisions, 71 MB, at 10%; 180,032, 215 MB, at 30%;
    * and, small beside these, the over-used clusters and the cross-source shared images
      (the report lists at most ``MAX_LEAKAGE_LISTED``, but gathers them all first).

    So at a million images, even with 30% near-duplicates, one worker needs about 160 MB for
    the union-find and every worker that applies the decisions about 290 MB of side inputs.
    What does not scale is a tight cluster of many images: 1,000 near-identical variants of
    one placeholder are about 500,000 edges (about 230 MB); with tens of millions of edges
    the union-find would have to be distributed (iterative connected components), which
    this stage does not do.
    Records themselves never meet in one place: only their summaries are grouped, by
    question images.
    """

    stage = STAGE_DEDUPE
    Reason = DedupeReason
    outputs = ("report",)
    fns = (ApplyDedupeFn,)

    def __init__(self, dedupe: DedupeConfig, on_bad_image: str, extra_image_edges=None) -> None:
        super().__init__()
        self._dedupe = dedupe
        self._policy = on_bad_image
        self._extra = extra_image_edges

    def expand_stage(self, records: beam.PCollection[Record]) -> dict[str, beam.PCollection]:
        dedupe, policy = self._dedupe, self._policy
        images = records | "ClusterImages" >> ClusterImages(dedupe.phash_distance, self._extra)
        clusters_side = beam.pvalue.AsSingleton(images["clusters"])
        items = records | "DecideItems" >> DecideItems(dedupe, policy, images["clusters"])
        frequent_side = beam.pvalue.AsSingleton(items["frequent"])
        applied = records | "ApplyDedupe" >> self.par_do(
            ApplyDedupeFn(policy, dedupe.max_image_uses),
            clusters_side,
            frequent_side,
            beam.pvalue.AsDict(items["decisions"]),
        )
        n_images = images["keys"] | "CountImages" >> beam.combiners.Count.Globally()

        def report(n, clusters, frequent, histogram, decided, shared):
            shared_counts = Counter(x["sources"] for x in shared)
            return {
                "dedupe": {
                    "phash_distance": dedupe.phash_distance,
                    "max_image_uses": dedupe.max_image_uses,
                    "text_jaccard": dedupe.text_jaccard,
                    "text_min_words": dedupe.text_min_words,
                    "text_categories": list(dedupe.text_categories),
                    "images": n,
                    "image_clusters": sum(clusters["sizes"].values()),
                    "images_in_clusters": len(clusters["canonical"]),
                    "cluster_sizes": clusters["sizes"],
                    "image_use_counts": histogram,
                    "over_used_images": len(frequent),
                    **decided,
                    "shared_image_counts": dict(sorted(shared_counts.items())),
                    "shared_images": shared[:MAX_LEAKAGE_LISTED],
                }
            }

        applied_report = n_images | "DedupeReport" >> beam.Map(
            report,
            clusters_side,
            frequent_side,
            beam.pvalue.AsSingleton(items["use_histogram"]),
            beam.pvalue.AsSingleton(items["decided"]),
            beam.pvalue.AsSingleton(items["shared"]),
        )
        return {"records": applied.records, DEAD: applied[DEAD], "report": applied_report}
