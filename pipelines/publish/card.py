"""The dataset card (``README.md``): a Hugging Face YAML header and the release's statistics.

The body follows the Hugging Face dataset card template (huggingface_hub's
``templates/datasetcard_template.md``): summary, licences and restrictions up front, details,
uses, structure, creation (source data, annotations, personal and sensitive information),
bias, risks and limitations, citation. Every number comes from
:func:`pipelines.publish.summary.summarize`, i.e. from the published records, and so do the
languages (by script, from the question texts). Text that comes from sources or inputs
(subfield names, licences, drop reasons, agreement figures) is escaped before it enters a
Markdown table or HTML; every table is followed by a blank line.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from datasets import DatasetInfo

from pipelines.publish.shards import COLUMN_DOCS, FEATURES, SPLIT
from pipelines.publish.summary import (
    CATEGORY_NAMES,
    LANGUAGE_NAMES,
    MMIE_CATEGORIES,
    MMIE_FIELDS,
    MMIE_FORMATS,
    MMIE_IMAGES_PER_QUESTION,
    MMIE_QUESTION_LENGTH,
    MMIE_TOTAL,
    agreement_rows,
    category_order,
    clip_is_untrained,
    numeric_leaves,
)
from sources import get_source
from sources import names as source_names
from sources.spec import CardInfo

MMIE_BIB = """@inproceedings{xia2025mmie,
  title     = {{MMIE}: Massive Multimodal Interleaved Comprehension Benchmark for Large
               Vision-Language Models},
  author    = {Xia, Peng and Han, Siwei and Qiu, Shi and Zhou, Yiyang and Wang, Zhaoyang and
               Zheng, Wenhao and Chen, Zhaorun and Cui, Chenhang and Ding, Mingyu and
               Li, Linjie and Wang, Lijuan and Yao, Huaxiu},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2025},
  note      = {arXiv:2410.10139}
}"""

MAX_CONFLICT_ROWS = 20  # label conflicts listed in the card; stats.json lists up to 1,000
DEFAULT_PROTOCOL = (
    "rubric annotation in Argilla (mmloom annotate): MMIE's criteria adapted to judging a "
    "reference item, overlapping annotators, verdict accept / fix / reject per item"
)

UNKNOWN_LICENCE = ("see provenance.license", "see the source's terms", "-")
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


# What the card says about each source comes from the source registry (sources/<name>/
# card.yaml, CITATION.bib): titles, categories, licences and the per-source phrases of the
# prose below. A source no longer registered (an old build) is named by its registry name.


def _cards() -> dict[str, CardInfo]:
    """Every registered source's card metadata, in registry order."""
    return {name: get_source(name).card for name in source_names()}


def source_title(name: str) -> str:
    card = _cards().get(name)
    return card.title if card else name


def source_category(name: str) -> str:
    card = _cards().get(name)
    return card.category if card else "-"


def source_licence(name: str) -> tuple[str, str, str]:
    """(licence in short, what it restricts, where its terms are); mmloom's own text."""
    card = _cards().get(name)
    if card is None or not card.licence:
        return UNKNOWN_LICENCE
    lic = card.licence
    return (lic.get("short", ""), lic.get("restrictions", ""), lic.get("terms", ""))


def _phrases(key: str, among: set[str] | None = None) -> list[Any]:
    """The sources' phrase ``key`` (of those in ``among``, if given), in registry order; a
    phrase two sources share once."""
    found = [
        c.phrase(key)
        for n, c in _cards().items()
        if c.phrase(key) and (among is None or n in among)
    ]
    return list(dict.fromkeys(found))


def _short_names() -> list[str]:
    return [c.name for c in _cards().values()]


def _series(items: list[str], final: str = ", and ") -> str:
    """``a``; ``a and b``; ``a, b, and c`` (``final`` joins the last two of three or more)."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + final + items[-1]


LICENCE_SECTION = "Licences and restrictions"
LICENCE_ANCHOR = "licences-and-restrictions"  # the Hub's (GitHub's) heading slug
_NON_COMMERCIAL = re.compile(r"non-?commercial|\bNC\b|BY-NC", re.IGNORECASE)


def non_commercial(licence: str) -> bool:
    """Whether a licence string names a non-commercial licence (``CC BY-NC-SA 2.0``,
    ``Attribution-NonCommercial License``, ``flickr:1 CC BY-NC-SA 2.0``)."""
    return bool(_NON_COMMERCIAL.search(licence))


_MD_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "|": "\\|",
        **{ch: "\\" + ch for ch in "\\`*_[]~#"},
    }
)


def md(value: Any) -> str:
    """``value`` as text safe inside a Markdown table cell or line: HTML special characters
    become entities, Markdown punctuation is backslash-escaped, line breaks become spaces."""
    text = "" if value is None else str(value)
    return " ".join(text.translate(_MD_ESCAPES).split())


def _table(header: list[str], rows: list[list[Any]], trusted: bool = False) -> str:
    """A Markdown table; cells are escaped unless ``trusted`` (mmloom's own text)."""
    cell = (lambda c: str(c)) if trusted else md
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return (
        "\n".join(lines) + "\n\n"
    )  # a table ends with a blank line, or it swallows the text after it


def _citations() -> list[str]:
    """The registered sources' CITATION.bib files, then MMIE's (MIA-Bench is in COCO's file)."""
    return [c.citation for c in _cards().values() if c.citation] + [MMIE_BIB]


def _count_word(n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return label
    return "100K<n<1M"


def language_codes(summary: dict[str, Any]) -> list[str]:
    """The languages found in the question texts, most questions first (``und`` left out)."""
    return [code for code in summary["languages"] if code != "und"]


def release_citation(summary: dict[str, Any], version: str, mmloom_version: str) -> str:
    """A BibTeX entry for this release (add the URL where it is published)."""
    name = summary["build"]["name"] or "release"
    key = re.sub(r"[^A-Za-z0-9]+", "_", f"mmloom_{name}_{version}").strip("_")
    sha = summary["build"]["config_sha256"] or "unknown"
    return (
        f"@misc{{{key},\n"
        f"  title        = {{mmloom {name} benchmark, release {version}}},\n"
        "  author       = {{mmloom contributors}},\n"
        f"  howpublished = {{Dataset release {version}, built with mmloom {mmloom_version} "
        f"(build config sha256 {sha})}},\n"
        f"  note         = {{Built from {_series(_short_names(), ' and ')}; cite them too}}\n"
        "}"
    )


def header(
    summary: dict[str, Any],
    version: str,
    files: list[tuple[str, int, int]],
    annotations_used: bool = False,
) -> dict:
    """The YAML header: languages, licence, tasks, configs, dataset_info (features, splits).

    The licence is ``other``: each source keeps its own, listed with links and restrictions
    in the card's first section, which ``license_link`` points to.
    """
    features = DatasetInfo(features=FEATURES)._to_yaml_dict()["features"]
    data_bytes = sum(size for _, size, _ in files)
    codes = language_codes(summary)
    return {
        "pretty_name": f"mmloom {summary['build']['name'] or 'release'} {version}",
        "language": codes,
        "multilinguality": "multilingual" if len(codes) > 1 else "monolingual",
        "language_creators": ["found"],
        "annotations_creators": ["found", "expert-generated"] if annotations_used else ["found"],
        "license": "other",
        "license_name": "mmloom-source-licences",
        "license_link": f"README.md#{LICENCE_ANCHOR}",
        "task_categories": ["image-text-to-text", "visual-question-answering", "any-to-any"],
        "tags": ["benchmark", "interleaved", "multimodal", "mmie", "mia-bench", "mmloom"],
        "size_categories": [_size_category(summary["total"])],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": SPLIT, "path": f"data/{SPLIT}-*"}],
            }
        ],
        "dataset_info": {
            "config_name": "default",
            "features": features,
            "splits": [{"name": SPLIT, "num_bytes": data_bytes, "num_examples": summary["total"]}],
            "download_size": data_bytes,
            "dataset_size": data_bytes,
        },
    }


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.2f}%" if total else "-"


def settings_view(obj: Any, depth: int = 0) -> Any:
    """The settings-like part of a stats section: scalars, short lists of scalars, and (one
    level down) dicts of those. Long lists and large maps (e.g. leakage pairs, cluster size
    histograms, which the report plots) are left out of the card."""
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        if _scalar(value) or (
            isinstance(value, list) and len(value) <= 10 and all(map(_scalar, value))
        ):
            out[key] = value
        elif isinstance(value, dict) and depth == 0 and len(value) <= 20:
            out[key] = settings_view(value, depth + 1)
    return out


def label_conflicts_section(dedupe: dict[str, Any], limit: int = MAX_CONFLICT_ROWS) -> str:
    """The card's list of label conflicts: records that were the same item as a kept record
    (same question images and text) but with another reference answer."""
    listed = dedupe.get("label_conflict_list") or []
    n = dedupe["label_conflicts"]
    if not n:
        return "#### Label conflicts\n\nNone: no two copies of one item disagree on the answer.\n"
    text = (
        f"{n} record{'s' if n != 1 else ''} "
        f"{'were' if n != 1 else 'was'} the same item as a kept record with another reference "
        "answer; each is a dead letter (`label_conflict`) and the kept record's answer is "
        "published. Check these labels."
    )
    if listed:
        rows = [
            [c["kept"], c["kept_answer"], c["dropped"], c["dropped_answer"]] for c in listed[:limit]
        ]
        text += "\n\n" + _table(["kept", "kept answer", "dropped", "dropped answer"], rows)
        if n > len(rows):
            text += f"\n\n{n - len(rows)} more in stats.json (`dedupe.label_conflict_list`)."
    return "#### Label conflicts\n\n" + text + "\n"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _json_block(obj: Any) -> str:
    # inside a fenced block Markdown does not render, but fences must not be closed early
    text = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True)
    return "```json\n" + text.replace("```", "` ` `") + "\n```"


def licences_section(summary: dict[str, Any]) -> str:
    """The card's first section: per source in the release, its licence, what it restricts,
    where its terms are, and how many of its images carry a non-commercial licence."""
    rows = []
    for name, n in summary["sources"].items():
        short, restrictions, links = source_licence(name)
        counts = summary["image_licence_counts"].get(name, {})
        images = sum(counts.values())
        nc = sum(k for lic, k in counts.items() if non_commercial(lic))
        rows.append(
            [
                md(source_title(name)),
                n,
                md(short),
                restrictions,
                f"{nc} of {images}",
                links,
            ]
        )
    header = ["source", "items", "licence", "restrictions", "images under an NC licence", "terms"]
    nc_parts = _phrases("non_commercial") + _phrases("non_commercial_images")
    clauses = _phrases("caveat")
    if nc_parts:
        whole = "**Non-commercial terms apply to the release as a whole**"
        clauses.insert(0, f"{whole} ({', '.join(nc_parts)})")
    warnings = f"{_series(clauses)}. " if clauses else ""
    return (
        f"## {LICENCE_SECTION}\n\n"
        "There is no single licence: every item keeps its source's licence (the record's "
        f"`provenance.license`, each image's `license`). {warnings}Filter on the "
        "licence columns before any other use.\n\n" + _table(header, rows, trusted=True)
    )


def agreement_section(agreement: Any) -> str:
    """Agreement as one compact table: per question, alpha with its 95% interval over all
    items and per category, and percent agreement over all items."""
    if agreement is None:
        return "Agreement: not provided.\n"
    rows = agreement_rows(agreement)
    if not rows:
        leaves = numeric_leaves(agreement)
        if not leaves:
            return "Agreement: agreement.json holds no agreement figures.\n"
        return "Agreement (agreement.json has no per-question section):\n\n" + _table(
            ["figure", "value"], [[k, f"{v:g}"] for k, v in leaves]
        )
    scopes = sorted(
        {r["scope"] for r in rows if r["scope"] != "all"},
        key=category_order,
    )

    def num(x: Any) -> str:
        return f"{x:.2f}" if isinstance(x, int | float) and not isinstance(x, bool) else md(x)

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "-"
        if r["alpha"] is None:
            return "n/a"
        ci = f" [{num(r['ci'][0])}, {num(r['ci'][1])}]" if r["ci"] else ""
        return f"{num(r['alpha'])}{ci}"

    by_key = {(r["question"], r["scope"]): r for r in rows}
    table = []
    for q in dict.fromkeys(r["question"] for r in rows):
        overall = by_key.get((q, "all"))
        pct = overall["percent"] if overall else None
        table.append(
            [
                md(q),
                md(overall["level"]) if overall else "-",
                cell(overall),
                *(cell(by_key.get((q, c))) for c in scopes),
                "-" if pct is None else num(pct),
            ]
        )
    boot = (agreement.get("rubric") or {}).get("bootstrap") or {}
    note = (
        f" Intervals: {md(boot.get('interval', 'percentile 95%'))} bootstrap over items, "
        f"{md(boot.get('resamples', '?'))} resamples."
        if boot
        else ""
    )
    return (
        "Agreement: Krippendorff's alpha with its 95% interval, over all items and per "
        f"category; n/a where fewer than two items were each judged by two or more "
        f"annotators.{note}\n\n"
        + _table(
            ["question", "level", "α all items", *(f"α {md(c)}" for c in scopes), "% agreement"],
            table,
            trusted=True,  # every cell was escaped or formatted above
        )
    )


def coverage_section(ann: dict[str, Any]) -> str:
    """Per category: build records, decisions, vetoes, published items and how many of them
    were judged; then the verdicts of every decision, the edits applied, and what
    ``annotations/responses.jsonl`` holds."""
    rows = [
        [md(c), v["build"], v["decided"], v["vetoed"], v["published"], v["judged"]]
        for c, v in ann["coverage"].items()
    ]
    keys = ("build", "decided", "vetoed", "published", "judged")
    rows.append(["total", *(sum(v[k] for v in ann["coverage"].values()) for k in keys)])
    table = _table(
        ["category", "build records", "decisions", "vetoed", "published", "published and judged"],
        rows,
        trusted=True,  # escaped above; the rest are numbers
    )
    verdicts = ", ".join(f"{md(k)} {v}" for k, v in ann["decision_verdicts"].items()) or "none"
    edits = ", ".join(f"{md(k)} {v}" for k, v in ann["edits"].items()) or "none"
    text = (
        f"Decisions read: {ann['decisions']}; {ann['matched']} match a record of the build "
        f"({ann['unknown_id']} name no record of it). Their verdicts: {verdicts}. "
        f"{ann['vetoed']} vetoed as harmful (an item that any annotator marks harmful is left "
        f"out whatever the verdict), {ann['needs_edit']} held back for an edit nobody settled, "
        f"{ann['correction_invalid']} whose correction did not fit the item. Corrections "
        f"applied to published items: {edits}; each row's `annotation.edits` gives the value "
        "before and after and the annotators who asked for it (pseudonymous ids).\n\n"
    )
    if ann.get("responses") is not None:
        text += (
            f"`annotations/responses.jsonl` holds every answer of the round ({ann['responses']} "
            "lines): one line per item, annotator and question, with the value, the response's "
            "status (submitted, draft or discarded), its time and the Argilla dataset. "
            "Annotators are named by pseudonymous ids (`ann-` and 12 hex digits of a salted "
            "hash), never by name.\n"
        )
    return table + text


def personal_information_section(summary: dict[str, Any]) -> str:
    sources = set(summary["sources"])
    lines = []
    cards = _cards()
    photos = [c.title for n, c in cards.items() if c.phrase("flickr_photos") and n in sources]
    if photos:
        lines.append(
            f"- {' and '.join(photos)} images are Flickr photographs taken by Flickr users, "
            "many of identifiable people (faces, family events, children, homes), published "
            "under the photographers' licences. The people shown did not consent to this use."
        )
    lines += [f"- {note}" for note in _phrases("personal", sources)]
    lines.append(
        "- mmloom neither blurs faces nor detects personal data. Human annotators answered a "
        "`harmful` question (none / sensitive / harmful) where the release was annotated; an "
        "item that any of them marked harmful is not published. To ask for an item's "
        "removal, contact the release's maintainers with its `id`."
    )
    return "#### Personal and Sensitive Information\n\n" + "\n".join(lines) + "\n"


def render(
    summary: dict[str, Any],
    version: str,
    mmloom_version: str,
    files: list[tuple[str, int, int]],
    mmie: dict[str, Any],
    annotations_used: bool,
) -> str:
    """The full card text. ``files`` lists the data shards as ``(path, bytes, rows)``."""
    s = summary
    total = s["total"]
    head = header(s, version, files, annotations_used)
    yaml_text = yaml.safe_dump(head, sort_keys=False, allow_unicode=True, width=100)
    parts: list[str] = [f"---\n{yaml_text}---\n"]
    name = md(s["build"]["name"] or "mmloom")
    cats_present = ", ".join(f"{c} ({CATEGORY_NAMES[c].split(' (')[0]})" for c in s["categories"])
    parts.append(
        f"# Dataset Card for {md(head['pretty_name'])}\n\n"
        f"An MMIE-style interleaved image-text benchmark: **{total} test items** whose "
        "questions and reference answers mix text and images, restructured from public "
        f"datasets ({', '.join(_short_names())}) into the categories {cats_present}. "
        "It is for evaluating vision-language models, not for training them.\n"
    )
    parts.append(licences_section(s))
    langs = s["languages"]
    lang_text = ", ".join(
        f"{LANGUAGE_NAMES.get(code, 'undetermined')} (`{code}`): {n}" for code, n in langs.items()
    )
    parts.append(
        "## Dataset Details\n\n### Dataset Description\n\n"
        f"Release {md(version)} of the {name} build, made with mmloom {md(mmloom_version)}: "
        f"{total} items in one `{SPLIT}` split. Build config sha256 "
        f"`{md(s['build']['config_sha256'])}`; file checksums in `manifest.json`; plots in "
        "`report/index.html`.\n\n"
        f"- **Curated by:** the mmloom pipeline (build `{name}`)\n"
        f"- **Language(s):** {lang_text or 'none detected'} questions. Detected from the "
        "question texts by script (Latin script counts as English); a question counts once "
        "for each language it contains (an English answer instruction after a question in "
        "another language counts too).\n"
        f"- **License:** per source, see [{LICENCE_SECTION}](#{LICENCE_ANCHOR})\n\n"
        "### Dataset Sources\n\n"
        + _table(
            ["source", "category", "items"],
            [[source_title(src), source_category(src), n] for src, n in s["sources"].items()],
            trusted=True,
        )
        + "MMIE, whose format and categories this follows: arXiv 2410.10139 (ICLR 2025).\n"
    )
    no_training = ", and ".join([*_phrases("training"), "training on a benchmark spoils it"])
    no_commerce = " and of ".join(
        [
            *_phrases("commercial_use"),
            *(["non-commercially licensed photos"] if _phrases("non_commercial_images") else []),
        ]
    )
    parts.append(
        "## Uses\n\n### Direct Use\n\n"
        "- Evaluating vision-language and interleaved image-text generation models on "
        "situational analysis, project-based learning, multi-step reasoning and (IF) "
        "instruction following, with references for a judge model or MMIE's scorer "
        "(`mmie/data.json`).\n"
        "- Comparing models on one fixed, checksummed set of items, per category and field.\n\n"
        "### Out-of-Scope Use\n\n"
        f"- **Training or fine-tuning models**: {no_training}.\n"
        + (f"- **Commercial use** of {no_commerce}.\n" if no_commerce else "")
        + "- Identifying, profiling or making decisions about the people in the photos.\n"
        "- Treating scores as a measure of MMIE itself: this is an MMIE-style rebuild, not "
        "MMIE's data.\n"
    )
    # structure
    parts.append(
        "## Dataset Structure\n\n### Loading\n\n```python\nfrom datasets import load_dataset\n\n"
        f'ds = load_dataset("parquet", data_dir="data")["{SPLIT}"]  # or the Hub repo id\n'
        'ds[0]["question"]  # [{"text": ..., "image": <PIL.Image>}, ...] in reading order\n'
        "```\n\n"
        "`mmie/data.json` with `mmie/images/` is the same benchmark in MMIE's evaluation input "
        "format: run MMIE's scorer with `--input_dir mmie --input_name data.json`.\n"
    )
    parts.append(
        "### Row layout\n\n"
        + _table(["column", "content"], [[k, v] for k, v in COLUMN_DOCS.items()], trusted=True)
        + "Shards hold at most 100 rows per row group so the Hugging Face viewer can read "
        "rows with images.\n"
    )
    mmie_total = sum(s["categories"].get(c, 0) for c in MMIE_CATEGORIES)
    cat_rows = [
        [
            c,
            CATEGORY_NAMES[c],
            n,
            _pct(n, total),
            _pct(n, mmie_total) if c in MMIE_CATEGORIES else "-",
            MMIE_CATEGORIES.get(c, "-"),
            _pct(MMIE_CATEGORIES[c], MMIE_TOTAL) if c in MMIE_CATEGORIES else "-",
        ]
        for c, n in s["categories"].items()
    ]
    cat_rows.append(["total", "", total, "100.00%" if total else "-", "", MMIE_TOTAL, "100.00%"])
    parts.append(
        "### Per category\n\nMMIE has no IF category, so shares are compared over SA + PBL + "
        "MSR.\n\n"
        + _table(
            [
                "category",
                "name",
                "items",
                "share",
                "share of SA + PBL + MSR",
                "MMIE items",
                "MMIE share",
            ],
            cat_rows,
        )
    )
    field_rows = []
    for key, n in s["fields"].items():
        cat, fld = key.split("/", 1)
        field_rows.append([cat, fld, n, MMIE_FIELDS.get((cat, fld), "-")])
    parts.append(
        "### Per field\n\nMMIE published field counts for SA and PBL only (MSR is one block "
        "of 3,616).\n\n" + _table(["category", "field", "items", "MMIE items"], field_rows)
    )
    parts.append(
        "### Per subfield\n\n"
        + _table(
            ["category", "field", "subfield", "items"],
            [[r["category"], r["field"], r["subfield"], r["count"]] for r in s["subfields"]],
        )
    )
    fmt_rows = [
        [c, v["multiple_choice"], v["open_ended"], v["multiple_choice"] + v["open_ended"]]
        for c, v in s["formats"].items()
    ]
    ft = s["format_totals"]
    fmt_rows.append(
        ["total", ft["multiple_choice"], ft["open_ended"], ft["multiple_choice"] + ft["open_ended"]]
    )
    adds_up = ft["multiple_choice"] + ft["open_ended"] == total
    parts.append(
        "### Question format\n\n"
        + _table(["category", "multiple-choice", "open-ended", "total"], fmt_rows)
        + f"Multiple-choice + open-ended = {ft['multiple_choice'] + ft['open_ended']} "
        f"{'=' if adds_up else '≠'} {total} items. (MMIE's published figures, "
        f"{MMIE_FORMATS['multiple_choice']} + {MMIE_FORMATS['open_ended']} = "
        f"{sum(MMIE_FORMATS.values())}, do not add up to its {MMIE_TOTAL}.)\n"
    )
    img_rows = [
        [
            c,
            v["images_per_question"],
            v["images_per_answer"],
            v["question_words"],
            v["question_chars"],
        ]
        for c, v in s["per_category"].items()
    ]
    img_rows.append(
        [
            "all",
            s["images_per_question"],
            s["images_per_answer"],
            s["question_words"],
            s["question_chars"],
        ]
    )
    parts.append(
        "### Images and length\n\n"
        f"- Images per question: **{s['images_per_question']}** on average "
        f"(MMIE: {MMIE_IMAGES_PER_QUESTION}); distribution (images: questions) "
        + ", ".join(f"{k}: {v}" for k, v in s["question_images_histogram"].items())
        + ".\n"
        f"- Mean question length: **{s['question_words']} words** (whitespace-separated tokens "
        "of all text segments of the question, instruction prompt included), "
        f"{s['question_chars']} characters. MMIE reports {MMIE_QUESTION_LENGTH}.\n\n"
        + _table(
            [
                "category",
                "images / question",
                "images / answer",
                "question words",
                "question characters",
            ],
            img_rows,
        )
    )
    parts.append(
        "### MMIE format export\n\n"
        f"`mmie/data.json` holds {mmie['items']} items (SA, PBL, MSR) and `mmie/images/` "
        f"{mmie['images']} images. MMIE's scorer (`dataset.py`) would truncate the answers "
        f"of {len(mmie['truncated'])} items (it stops reading an answer once 3 images in total "
        f"have been read) and skip {len(mmie['skipped'])} items (more than 4 images); "
        f"{len(mmie['more_than_3_images'])} items have more than 3 images. "
        f"{len(mmie['not_exported'])} IF items are not exported: MMIE's scorer has no prompt "
        "for them. All are listed in `mmie/scorer_limits.json`.\n"
    )
    # creation
    parts.append(
        "## Dataset Creation\n\n### Curation Rationale\n\n"
        "MMIE's data is gated and its restructuring rules are unpublished. mmloom rebuilds an "
        "MMIE-style benchmark from the same kinds of public sources with documented rules, so "
        "that every item can be traced to its source record and the build can be repeated.\n\n"
        "### Source Data\n\n#### Data Collection and Processing\n\n"
        "Each source's reader turns its published files into records (question and answer as "
        "interleaved text and image segments, category, field, subfield, provenance); the "
        "build validates them against the record schema, deduplicates images and texts, scores "
        "image-text pairs with CLIP and filters on the scores. Every rejected record is a dead "
        "letter with its reason.\n"
    )
    build = s["build"]
    drop_rows = [[d["stage"], d["reason"], d["count"]] for d in build["drops"]]
    totals = build.get("totals") or {}
    parts.append(
        "##### Build gates\n\n"
        f"The build read {totals.get('read', '-')} source units and wrote "
        f"{totals.get('written', '-')} records (reconciled: {build.get('reconciled')}). "
        "Drops by stage and reason:\n\n"
        + (_table(["stage", "reason", "count"], drop_rows) if drop_rows else "None.\n")
    )
    clip = s["clip"]
    if clip["scored_records"]:
        clip_text = (
            f"{clip['scored_records']} of {total} records scored with "
            f"{md(', '.join(clip['models']))} (cosine similarity of each image with its text)."
        )
        if clip_is_untrained(clip["models"]):
            clip_text += (
                " **Warning: this is an untrained test model; its scores mean nothing** and "
                "no item was kept or dropped on their merit."
            )
    else:
        clip_text = "Not scored: no record carries CLIP scores" + (
            " (" + "; ".join(f"{md(k)}: {v}" for k, v in clip["not_scored"].items()) + ")."
            if clip["not_scored"]
            else "."
        )
    if clip["settings"]:
        flat = clip["settings"].get("settings", clip["settings"])
        thresholds = flat.get("thresholds") or {}
        top = flat.get("keep_top_fraction") or {}
        clip_text += (
            " Minimum score per category: "
            + (", ".join(f"{md(k)} {v}" for k, v in sorted(thresholds.items())) or "none")
            + "; top fraction kept per source: "
            + (", ".join(f"{md(k)} {v}" for k, v in sorted(top.items())) or "none")
            + "."
        )
        origin = s["settings_origin"].get("clip", "")
        clip_text += f" Settings ({md(origin)}):\n\n" + _json_block(settings_view(clip["settings"]))
    parts.append("##### CLIP image-text scores\n\n" + clip_text + "\n")
    dedupe = s["dedupe"]
    if dedupe:
        origin = s["settings_origin"].get("dedupe", "")
        dedupe_text = f"Dedupe settings ({md(origin)}):\n\n" + _json_block(settings_view(dedupe))
        if origin != "stats.json":
            dedupe_text += (
                "\n\nstats.json holds no dedupe section: these are the configured settings; "
                "the build recorded no dedupe results."
            )
    else:
        dedupe_text = "Not recorded: neither stats.json nor the build config could be read."
    parts.append("##### Deduplication\n\n" + dedupe_text + "\n")
    if dedupe and "label_conflicts" in dedupe:
        parts.append(label_conflicts_section(dedupe).replace("#### Label", "##### Label", 1))
    pub_rows = [[d["stage"], d["reason"], d["count"]] for d in s["publish_drops"]]
    parts.append(
        "##### Publish\n\n"
        + (_table(["stage", "reason", "count"], pub_rows) if pub_rows else "Nothing dropped. ")
        + "Each dropped item is listed in `dropped.jsonl`.\n"
    )
    if s["selection"]:
        parts.append(
            "### Stratified selection\n\n"
            + _table(
                ["category", "field", "target", "available", "selected"],
                [
                    [r["category"], r["field"], r["target"], r["available"], r["selected"]]
                    for r in s["selection"]
                ],
            )
        )
    src_rows = [
        [
            source_title(src),
            n,
            " / ".join(s["licences"][src]),
            " / ".join(s["image_licences"][src]),
        ]
        for src, n in s["sources"].items()
    ]
    parts.append(
        "#### Who are the source data producers?\n\n"
        f"The authors of the {_count_word(len(_cards()))} source datasets and the people whose "
        f"work they collected: {_series(_phrases('producers'))}. The licences as the records "
        "state them:\n\n"
        + _table(["source", "items", "licence (records)", "licence (images)"], src_rows)
    )
    ann = s["annotation"]
    if annotations_used:
        agreement = ann["agreement"]
        protocol = agreement.get("protocol") if isinstance(agreement, dict) else None
        warning = (
            f"**Warning: {md(ann['warning'])}.**\n\n" if ann.get("warning") else ""
        )  # no decision matched the build
        ann_text = (
            warning
            + f"Protocol: {md(ann['coverage_line'])} "
            + f"{md(protocol).rstrip('.') if protocol else DEFAULT_PROTOCOL}.\n\n"
            f"{ann['annotated']} published items carry a human decision "
            f"({', '.join(f'{md(k)}: {v}' for k, v in ann['verdicts'].items()) or 'none'}; "
            f"{ann['corrected']} with a corrected field or subfield, answer text or weights"
            + (
                f"; {ann['mean_responses']} responses per item on average"
                if ann["mean_responses"] is not None
                else ""
            )
            + "). Rejected and vetoed items are excluded; corrections were re-validated "
            "against the record schema.\n\n" + agreement_section(agreement)
        )
        ann_text += "\n#### Coverage, verdicts and edits\n\n" + coverage_section(ann)
        n = agreement.get("annotators") if isinstance(agreement, dict) else None
        who = (
            f"{n} annotators" if isinstance(n, int) else "The annotators of the round"
        ) + ", working in Argilla with the rubric of the protocol above.\n"
    else:
        ann_text = (
            "Not annotated: this release was published without human annotation; its items "
            "passed the automated gates only.\n"
        )
        who = "None: the references are the sources' own answers.\n"
    parts.append(
        "### Annotations\n\n#### Annotation process\n\n" + ann_text + "\n"
        "#### Who are the annotators?\n\n" + who
    )
    parts.append(personal_information_section(s))
    others = {c: n for c, n in langs.items() if c not in ("en", "und")}
    other_languages = (
        "- Questions in languages other than English are few: "
        + ", ".join(f"{LANGUAGE_NAMES.get(c, c)} {n}" for c, n in others.items())
        + "; scores on them say little.\n"
        if others
        else ""
    )
    leakage = _phrases("leakage")
    by_category: dict[str, list[str]] = {}
    for card in _cards().values():
        by_category.setdefault(card.category, []).append(card.name)
    categories = ", ".join(f"{c} = {' + '.join(n)}" for c, n in by_category.items())
    parts.append(
        "## Bias, Risks, and Limitations\n\n"
        f"- Every source is public ({', '.join(_short_names())})"
        + (f", and {' and '.join(leakage)}" if leakage else "")
        + ": items may have leaked into the pretraining data of the models evaluated.\n"
        f"- Categories follow sources ({categories}), so category scores partly measure "
        "source style.\n"
        "- References for SA and PBL are one acceptable continuation, not the only one; MSR "
        "references are text only.\n"
        "- MMIE's scorer reads at most 3 images per item and skips items with more than 4 "
        "(see above); scores from different judges are not comparable.\n"
        "- The restructuring rules (split points, prompts) are mmloom's; MMIE's own are "
        "unpublished, so this is an MMIE-style benchmark, not a copy of MMIE.\n"
        + other_languages
        + "\n### Recommendations\n\n"
        "Report scores per category and field, with the release version; check the licence "
        "columns before redistributing items; do not train on the release.\n"
    )
    parts.append(
        "## Citation\n\nCite this release:\n\n```bibtex\n"
        + release_citation(s, version, mmloom_version)
        + "\n```\n\nand the sources and the benchmarks whose format this follows "
        "(MMIE; MIA-Bench for the IF items):\n\n```bibtex\n" + "\n\n".join(_citations()) + "\n```\n"
    )
    text = "\n".join(parts)
    return re.sub(r"\n{3,}", "\n\n", text)
