"""One seeded stratified selection (``schemas.selection``) for ``publish --targets`` and
``annotate push --sample stratified``."""

from __future__ import annotations

import pytest

from annotation.push import select_records
from pipelines.publish.inputs import read_targets, select
from schemas.errors import MmloomError
from schemas.selection import cell_size, rank, read_sizes, stratify


def _records() -> list[dict]:
    cells = [("PBL", "Health", 6), ("PBL", "Art", 4), ("MSR", "Mathematics", 5), ("SA", "Art", 3)]
    return [
        {"id": f"{cat}_{fld.lower()}_{i}", "category": cat, "field": fld}
        for cat, fld, n in cells
        for i in range(n)
    ]


SIZES = {"PBL": {"Health": 2, "*": 1}, "MSR": {"Mathematics": 10}, "IF": {"Art": 3}}


@pytest.mark.parametrize("seed", [0, 7])
def test_publish_and_push_choose_the_same_records(seed):
    records = _records()
    kept, dropped, report = select(records, SIZES, seed)
    pushed = select_records(list(reversed(records)), "stratified", sizes=SIZES, seed=seed)
    # the cells SIZES names: the same records; SA is not sized: publish keeps it whole, push
    # (no --per-cell) sends none of it, as its --sizes help says
    assert sorted(r["id"] for r in kept if r["category"] != "SA") == sorted(r["id"] for r in pushed)
    assert len(kept) + len(dropped) == len(records)
    assert sum(r["category"] == "SA" for r in kept) == 3
    assert sum(r["category"] == "SA" for r in pushed) == 0
    by_cell = {(c["category"], c["field"]): c for c in report}
    assert by_cell[("PBL", "Health")] == {
        "available": 6, "category": "PBL", "field": "Health", "selected": 2, "target": 2
    }  # fmt: skip
    assert by_cell[("IF", "Art")]["available"] == 0  # a named cell with no record is reported


def test_the_choice_is_the_smallest_ranks_and_depends_on_the_seed():
    records = _records()
    (health,) = [
        c for c in stratify(records, SIZES, 0) if (c.category, c.field) == ("PBL", "Health")
    ]
    ranks = [rank(0, r["id"]) for r in health.ranked]
    assert ranks == sorted(ranks) and len(health.kept) == 2 and len(health.left) == 4
    chosen = {s: {r["id"] for r in select(records, SIZES, s)[0]} for s in range(5)}
    assert len({frozenset(c) for c in chosen.values()}) > 1


def test_cell_size_falls_back_to_star_then_default():
    assert cell_size(SIZES, "PBL", "Health") == 2
    assert cell_size(SIZES, "PBL", "Art") == 1
    assert cell_size(SIZES, "SA", "Art") is None
    assert cell_size(SIZES, "SA", "Art", default=4) == 4
    assert cell_size({"MSR": {"Physics": 1}}, "MSR", "Art", default=4) == 4


def test_one_sizes_file_reader(tmp_path):
    good = tmp_path / "sizes.yaml"
    good.write_text("PBL:\n  Health: 2\n  '*': 1\n")
    assert (
        read_targets(str(good))
        == read_sizes(str(good), "--sizes")
        == {"PBL": {"Health": 2, "*": 1}}
    )
    for text, message in [
        ("XX:\n  Art: 1\n", "unknown category"),
        ("PBL:\n  Nope: 1\n", "unknown field"),
        ("PBL:\n  Art: -1\n", "non-negative integer"),
        ("PBL:\n  Art: true\n", "non-negative integer"),
        ("- 1\n", "must map category"),
    ]:
        good.write_text(text)
        with pytest.raises(MmloomError, match=message):
            read_sizes(str(good), "--sizes")
    with pytest.raises(MmloomError, match="cannot read targets file"):
        read_targets(str(tmp_path / "missing.yaml"))
