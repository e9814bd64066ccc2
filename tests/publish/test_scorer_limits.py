"""What the README, the source docs and the card say MMIE's scorer cuts agrees with the
release's ``mmie/scorer_limits.json`` for the sample (issue 22, item 5)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from sources.base import source_options

REPO = Path(__file__).resolve().parents[2]
CAPS = {"vist": "answer_segments", "wikihow": "max_answer_steps"}


def _n_images(segments: list[dict]) -> int:
    return sum(1 for s in segments if s["image"] is not None)


def _card_limit_rows(card: str) -> dict[str, dict[str, int]]:
    section = card.split("### MMIE format export", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (SA|PBL|MSR) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", section, re.M)
    keys = ("items", "read_whole", "truncated", "skipped")
    return {cat: dict(zip(keys, map(int, nums))) for cat, *nums in rows}


def test_card_counts_are_scorer_limits(release):
    limits = json.loads((release / "mmie" / "scorer_limits.json").read_text())
    card = (release / "README.md").read_text()
    by_cat = limits["by_category"]
    assert _card_limit_rows(card) == by_cat
    truncated = Counter(v["id"].split("_")[0] for v in limits["truncated"])
    skipped = Counter(v["id"].split("_")[0] for v in limits["skipped"])
    items = Counter(
        i["id"].split("_")[0] for i in json.loads((release / "mmie/data.json").read_text())
    )
    for cat, counts in by_cat.items():
        assert counts["truncated"] == truncated[cat] and counts["skipped"] == skipped[cat]
        assert counts["items"] == items[cat]
        assert counts["read_whole"] == items[cat] - truncated[cat] - skipped[cat]
    limitation = re.search(
        r"it cuts (\d+) of the references here.*never scores the (\d+) items", card
    )
    assert limitation and (int(limitation[1]), int(limitation[2])) == (
        len(limits["truncated"]),
        len(limits["skipped"]),
    )


def test_default_caps_are_cut_as_the_docs_say(release):
    """At the default caps (the sample uses them) every SA and PBL item with one question image
    and three answer images loses exactly its last answer segment, and one with two answer
    images is read whole: what the config table, the source READMEs and the card state."""
    sample = (REPO / "configs" / "sample.yaml").read_text()
    for source, key in CAPS.items():
        default = source_options(source, {})[key]
        assert default == 3 and f"{key}: {default}" in sample  # the sample builds at the default
    limits = json.loads((release / "mmie" / "scorer_limits.json").read_text())
    cut = {v["id"]: v for v in limits["truncated"]}
    at_default = 0
    for item in json.loads((release / "mmie" / "data.json").read_text()):
        if not item["id"].startswith(("SA_", "PBL_")):
            continue
        n_q, n_a = _n_images(item["question"]), _n_images(item["answer"])
        assert n_q == 1 and n_a <= 3, item["id"]
        if n_a == 3:
            at_default += 1
            view = cut[item["id"]]
            assert view["images_scored"] == 3
            assert view["answer_images_dropped"] == 1 and view["answer_text_segments_dropped"] == 1
        else:
            assert item["id"] not in cut
    assert at_default == sum(limits["by_category"][c]["truncated"] for c in ("SA", "PBL")) > 0

    readme = (REPO / "README.md").read_text()
    assert "scorer limit of 4" not in readme
    for source, key in CAPS.items():
        row = next(r for r in readme.splitlines() if r.startswith(f"| `sources.{source}.{key}` |"))
        assert "MMIE's scorer reads 3 of them and cuts the last" in row, row
        assert "mmie/scorer_limits.json lists these items as truncated" in row, row
        doc = (REPO / "sources" / source / "README.md").read_text()
        assert "scorer_limits.json" in doc and "within MMIE's scorer limit" not in doc
