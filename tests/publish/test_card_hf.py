"""The dataset card as Hugging Face reads it: huggingface_hub's card parsing, the template's
sections, licence fields, languages from the data, and Markdown tables that render whole.

``DatasetCard.validate()`` posts the card to the Hub (``/api/validate-yaml``), which tests
cannot reach; instead the YAML header is parsed into ``DatasetCardData`` and its values are
checked against the Hub's documented options (huggingface_hub's DatasetCardData docstring and
the hub-docs dataset card spec: ``license: other`` needs ``license_name`` and ``license_link``).
"""

from __future__ import annotations

import json
import re

import pytest
from huggingface_hub import DatasetCard, DatasetCardData
from markdown_it import MarkdownIt

from pipelines.publish.card import LICENCE_ANCHOR, non_commercial
from pipelines.publish.summary import languages
from schemas.buildio import read_records
from tests.publish.conftest import HOSTILE, pull_agreement, write_annotations

TEMPLATE_SECTIONS = [  # huggingface_hub templates/datasetcard_template.md, in order
    "## Dataset Details",
    "### Dataset Description",
    "### Dataset Sources",
    "## Uses",
    "### Direct Use",
    "### Out-of-Scope Use",
    "## Dataset Structure",
    "## Dataset Creation",
    "### Curation Rationale",
    "### Source Data",
    "#### Data Collection and Processing",
    "#### Who are the source data producers?",
    "### Annotations",
    "#### Annotation process",
    "#### Who are the annotators?",
    "#### Personal and Sensitive Information",
    "## Bias, Risks, and Limitations",
    "### Recommendations",
    "## Citation",
]
SIZE_CATEGORIES = {"n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M"}


def test_languages_by_script():
    assert languages("如图，在Rt△ABC中，∠ACB＝90°，则CD的长为（）\nAnswer with the letter.") == [
        "en",
        "zh",
    ]
    assert languages("چند عدد شیرینی مثلثی شکل در جعبه است؟") == ["fa"]
    assert languages("كم عدد الكعكات في الصندوق؟") == ["ar"]  # Arabic, no Persian letters
    assert languages("Find the angle θ when α = 30° in triangle ABC.") == ["en"]  # math Greek
    assert languages("ABC, DE = 5") == []  # point labels are not English
    assert languages("この図の三角形の面積は？") == ["ja"]


def test_non_commercial_licences():
    assert non_commercial("flickr:1 CC BY-NC-SA 2.0")
    assert non_commercial("Attribution-NonCommercial-ShareAlike License")
    assert not non_commercial("Attribution License") and not non_commercial("CC BY 4.0")


def _tables(text: str) -> list[tuple[int, int]]:
    """(first line, line after the table) of every Markdown table outside code fences."""
    lines, out, fence, i = text.splitlines(), [], False, 0
    while i < len(lines):
        if lines[i].startswith("```"):
            fence = not fence
        elif not fence and lines[i].startswith("|"):
            start = i
            while i < len(lines) and lines[i].startswith("|"):
                i += 1
            out.append((start, i))
            continue
        i += 1
    return out


def _check_tables_render(body: str) -> int:
    """Every table renders as one HTML table with all its rows and cells, and is followed
    by a blank line (otherwise the next sentence becomes a row of the table)."""
    lines = body.splitlines()
    spans = _tables(body)
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    rendered = [t for t in tokens if t.type == "table_open"]
    assert len(rendered) == len(spans)
    for (start, end), tok in zip(spans, rendered, strict=True):
        assert tok.map == [start, end], (lines[start], tok.map)
        assert end == len(lines) or lines[end] == "", f"no blank line after table: {lines[end]!r}"
        n_cells = len(re.split(r"(?<!\\)\|", lines[start].strip())) - 2
        for line in lines[start:end]:
            assert len(re.split(r"(?<!\\)\|", line.strip())) - 2 == n_cells, line
    return len(spans)


def _check_card(text: str, codes: list[str]) -> DatasetCard:
    card = DatasetCard(text)
    data = card.data
    assert isinstance(data, DatasetCardData)
    assert data.language == codes
    assert data.multilinguality == ("multilingual" if len(codes) > 1 else "monolingual")
    assert data.license == "other"
    assert data.license_name and re.fullmatch(r"[a-z0-9-]+", data.license_name)
    assert data.license_link == f"README.md#{LICENCE_ANCHOR}"
    assert "license_details" not in data.to_dict()  # the terms are in the body, up front
    assert set(data.size_categories) <= SIZE_CATEGORIES
    assert set(data.language_creators) <= {"found", "crowdsourced", "expert-generated"}
    assert set(data.annotations_creators) <= {"found", "expert-generated"}
    assert data.task_categories and data.pretty_name
    assert data.to_dict()["configs"][0]["data_files"] == [{"split": "test", "path": "data/test-*"}]
    body = card.text
    headings = [line for line in body.splitlines() if line.startswith("#")]
    positions = [headings.index(h) for h in TEMPLATE_SECTIONS]
    assert positions == sorted(positions), "sections out of the template's order"
    # the licence section comes right after the summary, and license_link's anchor is its slug
    assert headings[1] == "## Licences and restrictions"
    assert headings[1][3:].lower().replace(" ", "-") == LICENCE_ANCHOR
    licences = body.split("## Licences and restrictions\n", 1)[1].split("\n## ", 1)[0]
    assert "non-commercial" in licences.lower() and "no training" in licences
    assert "](https://creativecommons.org/licenses/by-sa/4.0/)" in licences
    assert "@misc{mmloom_" in body.split("## Citation", 1)[1]  # the release's own entry
    assert _check_tables_render(body) >= 10
    return card


@pytest.mark.slow
def test_sample_card_parses_with_huggingface_hub(release, sample_build):
    text = (release / "README.md").read_text()
    # the sample holds MathVista's Chinese (pids 3, 9, 17) and Persian (204, 243) questions
    card = _check_card(text, ["en", "zh", "fa"])
    assert "Chinese (`zh`): 3, Persian (`fa`): 2" in card.text
    assert "Not annotated" in card.text and "untrained test model" in card.text
    sources = {r["provenance"]["source"] for r in read_records(str(sample_build))}
    table = card.text.split("## Licences and restrictions\n", 1)[1].split("\n## ", 1)[0]
    assert sum(1 for line in table.splitlines() if line.startswith("| ")) == len(sources) + 1


@pytest.mark.slow
def test_annotated_card_has_a_compact_agreement_table(rich_build, tmp_path):
    ids = sorted(r["id"] for r in read_records(str(rich_build)))[:10]
    lines = [json.dumps({"id": i, "verdict": "accept", "n_responses": 2}) for i in ids]
    agreement = pull_agreement(f"two annotators {HOSTILE}")
    ann = write_annotations(tmp_path / "ann", lines, agreement)
    out = tmp_path / "release"
    from pipelines.publish.cli import main as publish_main

    argv = [
        "--build", str(rich_build), "--annotations", str(ann),
        "--output", str(out), "--version", "0.5.0",
    ]  # fmt: skip
    assert publish_main(argv) == 0
    text = (out / "README.md").read_text()
    card = _check_card(text, ["en", "zh", "fa"])
    assert "expert-generated" in card.data.annotations_creators
    section = card.text.split("#### Annotation process\n", 1)[1].split("\n#### ", 1)[0]
    assert "```" not in section and '"resamples"' not in section  # no JSON
    assert "<script>" not in section
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| question | level | α all items | α SA | α PBL | α MSR | α IF |")
    assert len(rows) == 1 + len(agreement["questions"])  # one row per question
    verdict = agreement["questions"]["verdict"]
    lo, hi = verdict["alpha_ci95"]
    assert f"| verdict | nominal | {verdict['alpha']:.2f} [{lo:.2f}, {hi:.2f}] |" in section
    assert "| weights\\_fit | ordinal |" in section and "| n/a |" in section
    assert len(section.splitlines()) < 30  # not hundreds of lines of JSON


def test_table_check_catches_a_table_that_swallows_the_next_sentence():
    good = "Text.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nNext sentence.\n"
    assert _check_tables_render(good) == 1
    with pytest.raises(AssertionError):
        _check_tables_render(good.replace("| 1 | 2 |\n\n", "| 1 | 2 |\n"))
    with pytest.raises(AssertionError):
        _check_tables_render(good.replace("| 1 | 2 |", "| 1 | 2 | 3 |"))


def test_agreement_table_takes_only_numbers_from_agreement_json():
    from pipelines.publish.card import agreement_section
    from pipelines.publish.summary import agreement_rows

    hostile = pull_agreement()
    hostile["questions"]["verdict"]["alpha"] = HOSTILE
    hostile["questions"]["verdict"]["alpha_ci95"] = [0.1, "x"]
    hostile["questions"][HOSTILE] = {"level": HOSTILE, "alpha": float("nan")}
    rows = {(r["question"], r["scope"]): r for r in agreement_rows(hostile)}
    assert rows[("verdict", "all")]["alpha"] is None and rows[("verdict", "all")]["ci"] is None
    assert rows[(HOSTILE, "all")]["alpha"] is None
    text = agreement_section(hostile)
    assert "<script>" not in text and "<img" not in text
    assert _check_tables_render(text) == 1
