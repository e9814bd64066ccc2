"""The dedupe stages of ``mmloom build``: duplicate images, over-used images, duplicate items.

Input: finished, valid records (images carry ``sha256``, ``phash``, ``bytes``). The stages
only move small keys around; records (with their bytes) pass through once, in
:class:`ApplyDedupeFn`, which reads the decisions as side inputs.

1. **Image clusters.** Images are the same picture when their bytes are equal (sha256:
   paths are content-addressed, so this is one image) or when their 64-bit pHashes differ in
   at most ``k`` bits. Near pairs come from multi-index hashing (``hamming.band_keys``: k+1
   bands, one ``GroupByKey``, verify on all 64 bits; exact recall). Extra edges, e.g. CLIP
   embedding near-duplicates, can join the same graph. Union-find turns edges into clusters;
   each cluster's canonical image is the one with most pixels, then the smallest sha256.
2. **Frequency rule.** A cluster used by more than ``max_image_uses`` records is a logo, an
   icon or a stock picture (OBELICS, MMC4: 10): its images are dropped from every record, and
   the record with them (``on_bad_image: drop_record``) or just their segments
   (``drop_segment``, while the question keeps an image).
3. **Duplicate items.** Records whose question images fall in the same cluster are the same
   item; so are records of ``text_categories`` whose question-and-answer texts are equal
   after normalisation or near-equal by MinHash LSH (Jaccard >= ``text_jaccard`` on word
   5-grams; see ``text.item_text`` for why the answer is part of the text).
   Record clusters (union-find again) keep the record with the smallest id; the others become
   dead letters naming the kept id. Pairs from different sources are listed in stats.json's
   ``dedupe.leakage``.

Dead letters (stage ``dedupe``): ``duplicate_item_image``, ``duplicate_item_text``,
``image_too_frequent`` (record or image unit).
Counters (``Dedupe``): ``out``, ``dropped_<reason>``, ``images_dropped_image_too_frequent``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import apache_beam as beam
import numpy as np

from pipelines.dedupe import hamming, text
from pipelines.transforms.images import DROP_SEGMENT
from schemas.deadletter import DEAD, dead_letter
from schemas.metrics import inc

STAGE_DEDUPE = "dedupe"
MAX_LEAKAGE_LISTED = 1000


# ---------------------------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------------------------


def image_keys(record: dict[str, Any]) -> list[tuple[str, str, int]]:
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
    record: dict[str, Any], clusters: dict[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    """The small view of a record that the item-level decisions need."""
    canon = clusters["canonical"]
    q_images = [s["image"] for s in record["question"] if s["image"]]
    by_path = {im["path"]: im["sha256"] for im in record["images"]}
    out = {
        "id": record["id"],
        "source": record["provenance"]["source"],
        "category": record["category"],
        "question_clusters": sorted({canon.get(by_path[p], by_path[p]) for p in q_images}),
        "all_clusters": sorted({canon.get(im["sha256"], im["sha256"]) for im in record["images"]}),
        "text_key": None,
        "minhash": None,
    }
    if record["category"] in options.get("text_categories", ("PBL", "MSR")):
        q = text.item_text(record)
        if text.normalise(q):
            out["text_key"] = text.text_key(q)
            if len(text.normalise(q).split()) >= options.get("text_min_words", 8):
                out["minhash"] = text.minhash(q)
    return out


def survives_frequency(summary: dict[str, Any], frequent: set[str], policy: str) -> bool:
    """Would the record still be written after the frequency rule?"""
    if not frequent.intersection(summary["all_clusters"]):
        return True
    if policy != DROP_SEGMENT:
        return False
    return any(c not in frequent for c in summary["question_clusters"])


def decide_items(edges: list[tuple[str, str, str]], sources: dict[str, str]) -> dict[str, Any]:
    """Union-find over record edges ``(id_a, id_b, via)``; keep the smallest id per cluster.

    Returns ``{"drop": {id: [kept_id, via]}, "leakage": [...], "leakage_counts": {...},
    "duplicate_items": {via: n}}`` where ``via`` is ``image`` when the dropped record shares
    question images with another record of its cluster, else ``text``.
    """
    via_of: dict[str, set[str]] = defaultdict(set)
    for a, b, via in edges:
        via_of[a].add(via)
        via_of[b].add(via)
    drop: dict[str, list[str]] = {}
    leakage: list[dict[str, str]] = []
    leak_counts: Counter = Counter()
    kinds: Counter = Counter()
    for members in hamming.clusters((a, b) for a, b, _ in edges):
        kept = members[0]
        for m in members[1:]:
            via = "image" if "image" in via_of[m] else "text"
            drop[m] = [kept, via]
            kinds[via] += 1
            if sources[m] != sources[kept]:
                pair = "/".join(sorted((sources[m], sources[kept])))
                leak_counts[pair] += 1
                if len(leakage) < MAX_LEAKAGE_LISTED:
                    leakage.append({"kept": kept, "dropped": m, "sources": pair, "via": via})
    return {
        "drop": drop,
        "leakage": leakage,
        "leakage_counts": dict(sorted(leak_counts.items())),
        "duplicate_items": dict(sorted(kinds.items())),
    }


def star_edges(ids: list[str], via: str):
    ordered = sorted(set(ids))
    for other in ordered[1:]:
        yield ordered[0], other, via


def near_text_edges(group: list[tuple[str, np.ndarray]], threshold: float):
    members = sorted(group, key=lambda x: x[0])
    for i in range(len(members)):
        for j in range(i + 1, len(members)):
            a, b = members[i], members[j]
            if a[0] != b[0] and text.jaccard_estimate(a[1], b[1]) >= threshold:
                yield a[0], b[0], "text"


def drop_frequent(
    record: dict[str, Any], frequent: set[str], canonical: dict[str, str], policy: str
) -> tuple[dict[str, Any] | None, list[str]]:
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


class ApplyDedupeFn(beam.DoFn):
    def __init__(self, policy: str, max_uses: int) -> None:
        self._policy = policy
        self._max_uses = max_uses

    def process(self, record, clusters, frequent, decisions):
        prov = record["provenance"]
        source, sid = prov["source"], prov["source_id"]
        dup = decisions["drop"].get(record["id"])
        if dup is not None:
            kept, via = dup
            reason = f"duplicate_item_{via}"
            inc("Dedupe", f"dropped_{reason}")
            yield beam.pvalue.TaggedOutput(
                DEAD,
                dead_letter(STAGE_DEDUPE, reason, source, sid, f"{record['id']} duplicates {kept}"),
            )
            return
        kept_record, dropped = drop_frequent(
            record, set(frequent), clusters["canonical"], self._policy
        )
        detail = f"used by more than {self._max_uses} records"
        if kept_record is None:
            inc("Dedupe", "dropped_image_too_frequent")
            yield beam.pvalue.TaggedOutput(
                DEAD,
                dead_letter(
                    STAGE_DEDUPE, "image_too_frequent", source, sid, f"{dropped}: {detail}"
                ),
            )
            return
        for path in dropped:
            inc("Dedupe", "images_dropped_image_too_frequent")
            yield beam.pvalue.TaggedOutput(
                DEAD,
                dead_letter(
                    STAGE_DEDUPE, "image_too_frequent", source, sid, f"{path}: {detail}", "image"
                ),
            )
        inc("Dedupe", "out")
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


class DedupeRecords(beam.PTransform):
    """Image clusters, the frequency rule and duplicate items (see the module docstring).

    Args:
        options: the ``dedupe`` block of the build config.
        on_bad_image: the ``images.on_bad_image`` policy (for over-used images).
        extra_image_edges: optional PCollection of more image edges ``(sha_a, sha_b, score)``
            (CLIP embedding near-duplicates); they join the pHash edges before clustering.
    Input: valid records. Output: ``DoOutputsTuple`` with ``records`` (kept), ``DEAD``, and
    ``report``: one ``{"dedupe": {...}}`` dict for stats.json.
    """

    def __init__(
        self, options: dict[str, Any], on_bad_image: str = "drop_record", extra_image_edges=None
    ) -> None:
        super().__init__()
        self._opts = options
        self._policy = on_bad_image
        self._extra = extra_image_edges

    def expand(self, records):
        opts, policy = self._opts, self._policy
        k = opts.get("phash_distance", 5)
        max_uses = opts.get("max_image_uses", 10)
        jaccard = opts.get("text_jaccard", 0.8)

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
        edges = edges | "DistinctEdges" >> beam.Distinct()
        clusters = (
            edges
            | "GatherImageEdges" >> beam.combiners.ToList()
            | "ClusterImages" >> beam.Map(image_clusters)
        )
        clusters_side = beam.pvalue.AsSingleton(clusters)

        summaries = records | "Summarise" >> beam.Map(record_summary, clusters_side, opts)
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
        candidates = summaries | "Survivors" >> beam.Filter(
            lambda s, f: survives_frequency(s, set(f), policy), frequent_side
        )

        def image_groups(s, f):
            for c in s["question_clusters"]:
                if c not in f:
                    yield c, s["id"]

        by_image = (
            candidates
            | "ByQuestionImage" >> beam.FlatMap(image_groups, frequent_side)
            | "GroupByImage" >> beam.GroupByKey()
            | "ImageItemEdges" >> beam.FlatMap(lambda kv: star_edges(list(kv[1]), "image"))
        )
        by_text = (
            candidates
            | "ByText"
            >> beam.FlatMap(lambda s: [(s["text_key"], s["id"])] if s["text_key"] else [])
            | "GroupByText" >> beam.GroupByKey()
            | "TextItemEdges" >> beam.FlatMap(lambda kv: star_edges(list(kv[1]), "text"))
        )
        bands, rows = text.lsh_params(jaccard)
        by_near_text = (
            candidates
            | "MinHashBands"
            >> beam.FlatMap(
                lambda s: (
                    [
                        (band, (s["id"], s["minhash"]))
                        for band in text.band_keys(s["minhash"], bands, rows)
                    ]
                    if s["minhash"] is not None
                    else []
                )
            )
            | "GroupByTextBand" >> beam.GroupByKey()
            | "NearTextEdges" >> beam.FlatMap(lambda kv: near_text_edges(list(kv[1]), jaccard))
        )
        sources = (
            candidates
            | "IdSource" >> beam.Map(lambda s: (s["id"], s["source"]))
            | "GatherSources" >> beam.combiners.ToDict()
        )
        decisions = (
            (by_image, by_text, by_near_text)
            | "FlattenItemEdges" >> beam.Flatten()
            | "DistinctItemEdges" >> beam.Distinct()
            | "GatherItemEdges" >> beam.combiners.ToList()
            | "DecideItems" >> beam.Map(decide_items, beam.pvalue.AsSingleton(sources))
        )
        applied = records | "ApplyDedupe" >> beam.ParDo(
            ApplyDedupeFn(policy, max_uses),
            clusters_side,
            frequent_side,
            beam.pvalue.AsSingleton(decisions),
        ).with_outputs(DEAD, main="records")

        n_images = keys | "CountImages" >> beam.combiners.Count.Globally()

        def report(n, clusters, frequent, decisions):
            return {
                "dedupe": {
                    "phash_distance": k,
                    "max_image_uses": max_uses,
                    "text_jaccard": jaccard,
                    "text_lsh_bands_rows": [bands, rows],
                    "text_categories": list(opts.get("text_categories", ["PBL", "MSR"])),
                    "images": n,
                    "image_clusters": sum(clusters["sizes"].values()),
                    "images_in_clusters": len(clusters["canonical"]),
                    "cluster_sizes": clusters["sizes"],
                    "over_used_images": len(frequent),
                    "duplicate_items": decisions["duplicate_items"],
                    "leakage_counts": decisions["leakage_counts"],
                    "leakage": decisions["leakage"],
                }
            }

        applied_report = n_images | "DedupeReport" >> beam.Map(
            report, clusters_side, frequent_side, beam.pvalue.AsSingleton(decisions)
        )
        return {"records": applied.records, DEAD: applied[DEAD], "report": applied_report}
