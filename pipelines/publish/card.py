"""The dataset card (``README.md``): a Hugging Face YAML header and the release's statistics.

The header is huggingface_hub's ``DatasetCardData``, with ``configs`` and ``dataset_info``
written by ``datasets`` itself (as ``push_to_hub`` writes them); the body is the Jinja2
template ``templates/card.md.j2`` (tables and sections in ``templates/card_macros.md.j2``),
laid out like huggingface_hub's ``datasetcard_template.md``: summary, licences and
restrictions up front, details, uses, structure, creation (source data, annotations, personal
and sensitive information), bias, risks and limitations, citation. This module computes what
the template shows (:func:`card_context`). Every number comes from
:func:`pipelines.publish.summary.summarize`, i.e. from the published records, and so do the
languages (by script, from the question texts). Text that comes from sources or inputs
(subfield names, licences, drop reasons, agreement figures) is escaped (:func:`md`, the
template's ``md`` filter) before it enters a Markdown table or line; every table is followed
by a blank line. The rendered card is read back as a ``DatasetCard``, as the Hub reads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from datasets import DatasetInfo
from datasets.info import DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData
from jinja2 import Environment, PackageLoader, StrictUndefined

from pipelines.publish.audit_view import audit_tables
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
    audit_review_table,
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
# prose. A source no longer registered (an old build) is named by its registry name.


def _cards() -> dict[str, CardInfo]:
    """Every registered source's card metadata, in registry order."""
    return {name: get_source(name).card for name in source_names()}


def _phrases(key: str, among: Iterable[str] | None = None) -> list[Any]:
    """The sources' phrase ``key`` (of those in ``among``, if given), in registry order; a
    phrase two sources share once."""
    among = None if among is None else set(among)
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


def _count_word(n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


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


def _citations() -> list[str]:
    """The registered sources' CITATION.bib files, then MMIE's (MIA-Bench is in COCO's file)."""
    return [c.citation for c in _cards().values() if c.citation] + [MMIE_BIB]


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


# The YAML header's keys in the card's order (DatasetCardData orders its own fields otherwise).
HEADER_KEYS = [
    "pretty_name",
    "language",
    "multilinguality",
    "language_creators",
    "annotations_creators",
    "license",
    "license_name",
    "license_link",
    "task_categories",
    "tags",
    "size_categories",
    "configs",
    "dataset_info",
]


def card_data(
    summary: dict[str, Any],
    version: str,
    files: list[tuple[str, int, int]],
    annotations_used: bool = False,
) -> DatasetCardData:
    """The YAML header: languages, licence, tasks, configs, dataset_info (features, splits).

    ``configs`` and ``dataset_info`` are written by ``datasets``' own ``MetadataConfigs`` and
    ``DatasetInfosDict``, as ``push_to_hub`` writes them. The licence is ``other``: each
    source keeps its own, listed with links and restrictions in the card's first section,
    which ``license_link`` points to.
    """
    data_bytes = sum(size for _, size, _ in files)
    codes = language_codes(summary)
    data = DatasetCardData(
        pretty_name=f"mmloom {summary['build']['name'] or 'release'} {version}",
        language=codes,
        multilinguality="multilingual" if len(codes) > 1 else "monolingual",
        language_creators=["found"],
        annotations_creators=["found", "expert-generated"] if annotations_used else ["found"],
        license="other",
        license_name="mmloom-source-licences",
        license_link=f"README.md#{LICENCE_ANCHOR}",
        task_categories=["image-text-to-text", "visual-question-answering", "any-to-any"],
        tags=["benchmark", "interleaved", "multimodal", "mmie", "mia-bench", "mmloom"],
        size_categories=[_size_category(summary["total"])],
    )
    MetadataConfigs(
        {"default": {"data_files": [{"split": SPLIT, "path": f"data/{SPLIT}-*"}]}}
    ).to_dataset_card_data(data)
    splits = SplitDict()
    splits.add(SplitInfo(name=SPLIT, num_bytes=data_bytes, num_examples=summary["total"]))
    info = DatasetInfo(
        features=FEATURES, splits=splits, download_size=data_bytes, dataset_size=data_bytes
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    # datasets leaves the name of a lone "default" config out of dataset_info; mmloom's cards
    # have always named it there, as `configs` does (the Hub reads both forms)
    data["dataset_info"] = {"config_name": "default", **data["dataset_info"]}
    return data


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


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _json_block(obj: Any) -> str:
    # inside a fenced block Markdown does not render, but fences must not be closed early
    text = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True)
    return "```json\n" + text.replace("```", "` ` `") + "\n```"


# Per-source card metadata, looked up in the source registry: the template only sees these
# values.
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


def personal_information(sources: dict[str, int]) -> tuple[list[str], list[str]]:
    """(titles of the sources with Flickr photographs, per-source notes) for the sources in
    the release."""
    photos = [c.title for n, c in _cards().items() if c.phrase("flickr_photos") and n in sources]
    return photos, _phrases("personal", sources)


def source_prose() -> dict[str, str]:
    """The card's sentences that name the registered sources (mmloom's own text, from each
    source's card.yaml phrases)."""
    nc_parts = _phrases("non_commercial") + _phrases("non_commercial_images")
    clauses = _phrases("caveat")
    if nc_parts:
        whole = "**Non-commercial terms apply to the release as a whole**"
        clauses.insert(0, f"{whole} ({', '.join(nc_parts)})")
    no_commerce = " and of ".join(
        [
            *_phrases("commercial_use"),
            *(["non-commercially licensed photos"] if _phrases("non_commercial_images") else []),
        ]
    )
    leakage = _phrases("leakage")
    by_category: dict[str, list[str]] = {}
    for card in _cards().values():
        by_category.setdefault(card.category, []).append(card.name)
    return {
        "short_names": ", ".join(_short_names()),
        "licence_warnings": f"{_series(clauses)}. " if clauses else "",
        "no_training": ", and ".join([*_phrases("training"), "training on a benchmark spoils it"]),
        "no_commerce": no_commerce,
        "n_sources": _count_word(len(_cards())),
        "producers": _series(_phrases("producers")),
        "leakage": f", and {' and '.join(leakage)}" if leakage else "",
        "categories_by_source": ", ".join(f"{c} = {' + '.join(n)}" for c, n in by_category.items()),
    }


def licence_rows(summary: dict[str, Any]) -> list[list[Any]]:
    """The licences table, escaped here: per source in the release, its licence, what it
    restricts, how many of its images carry a non-commercial licence, where its terms are."""
    rows = []
    for name, n in summary["sources"].items():
        short, restrictions, links = source_licence(name)
        counts = summary["image_licence_counts"].get(name, {})
        images = sum(counts.values())
        nc = sum(k for lic, k in counts.items() if non_commercial(lic))
        rows.append(
            [md(source_title(name)), n, md(short), restrictions, f"{nc} of {images}", links]
        )
    return rows


def agreement_view(agreement: Any) -> dict[str, Any]:
    """What the agreement section shows: nothing, numeric leaves, or per question the alpha
    with its 95% interval over all items and per category, and percent agreement (cells
    escaped or formatted here: only numbers come from agreement.json)."""
    if agreement is None:
        return {"kind": "none"}
    rows = agreement_rows(agreement)
    if not rows:
        leaves = numeric_leaves(agreement)
        if not leaves:
            return {"kind": "empty"}
        return {"kind": "leaves", "rows": [[k, f"{v:g}"] for k, v in leaves]}
    scopes = sorted({r["scope"] for r in rows if r["scope"] != "all"}, key=category_order)

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
    return {
        "kind": "table",
        "header": ["question", "level", "α all items", *(f"α {md(c)}" for c in scopes),
                   "% agreement"],
        "rows": table,
        "bootstrap": {
            "interval": boot.get("interval", "percentile 95%"),
            "resamples": boot.get("resamples", "?"),
        }
        if boot
        else None,
    }  # fmt: skip


def agreement_section(agreement: Any) -> str:
    """The card's agreement text (the ``agreement`` macro of card_macros.md.j2)."""
    return _macros().agreement(agreement_view(agreement))


def _category_rows(s: dict[str, Any]) -> list[list[Any]]:
    total = s["total"]
    mmie_total = sum(s["categories"].get(c, 0) for c in MMIE_CATEGORIES)
    rows = [
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
    rows.append(["total", "", total, "100.00%" if total else "-", "", MMIE_TOTAL, "100.00%"])
    return rows


def _field_rows(s: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for key, n in s["fields"].items():
        cat, fld = key.split("/", 1)
        rows.append([cat, fld, n, MMIE_FIELDS.get((cat, fld), "-")])
    return rows


def _format_rows(s: dict[str, Any]) -> list[list[Any]]:
    rows = [
        [c, v["multiple_choice"], v["open_ended"], v["multiple_choice"] + v["open_ended"]]
        for c, v in s["formats"].items()
    ]
    ft = s["format_totals"]
    rows.append(
        ["total", ft["multiple_choice"], ft["open_ended"], ft["multiple_choice"] + ft["open_ended"]]
    )
    return rows


def _image_rows(s: dict[str, Any]) -> list[list[Any]]:
    keys = ("images_per_question", "images_per_answer", "question_words", "question_chars")
    rows = [[c, *(v[k] for k in keys)] for c, v in s["per_category"].items()]
    rows.append(["all", *(s[k] for k in keys)])
    return rows


def _coverage_rows(ann: dict[str, Any]) -> list[list[Any]]:
    keys = ("build", "decided", "vetoed", "published", "judged")
    rows = [[md(c), *(v[k] for k in keys)] for c, v in ann["coverage"].items()]
    rows.append(["total", *(sum(v[k] for v in ann["coverage"].values()) for k in keys)])
    return rows  # escaped here; the rest are numbers


def card_context(
    summary: dict[str, Any],
    version: str,
    mmloom_version: str,
    mmie: dict[str, Any],
    annotations_used: bool,
) -> dict[str, Any]:
    """What card.md.j2 needs besides the summary itself: rows of its tables, per-source
    metadata, settings as JSON blocks, and mmloom's constants."""
    s = summary
    clip, dedupe, ann = s["clip"], s["dedupe"], s["annotation"]
    flat = (clip["settings"] or {}).get("settings", clip["settings"]) or {}
    agreement = ann.get("agreement")
    n_annotators = agreement.get("annotators") if isinstance(agreement, dict) else None
    return {
        "s": s,
        "total": s["total"],
        "version": version,
        "mmloom_version": mmloom_version,
        "mmie": mmie,
        "mmie_limit_rows": [
            [c, v["items"], v["read_whole"], v["truncated"], v["skipped"]]
            for c, v in mmie["by_category"].items()
        ],
        "annotations_used": annotations_used,
        "name": md(s["build"]["name"] or "mmloom"),
        "contact": md(s["build"]["contact"]) if s["build"].get("contact") else None,
        "split": SPLIT,
        "licence_section": LICENCE_SECTION,
        "licence_anchor": LICENCE_ANCHOR,
        "category_names": CATEGORY_NAMES,
        "language_names": LANGUAGE_NAMES,
        "column_docs": COLUMN_DOCS,
        "mmie_formats": MMIE_FORMATS,
        "mmie_total": MMIE_TOTAL,
        "mmie_images_per_question": MMIE_IMAGES_PER_QUESTION,
        "mmie_question_length": MMIE_QUESTION_LENGTH,
        "default_protocol": DEFAULT_PROTOCOL,
        "licence_rows": licence_rows(s),
        "source_rows": [
            [source_title(src), source_category(src), n] for src, n in s["sources"].items()
        ],
        "producer_rows": [
            [
                source_title(src),
                n,
                " / ".join(s["licences"][src]),
                " / ".join(s["image_licences"][src]),
            ]
            for src, n in s["sources"].items()
        ],
        "photo_sources": personal_information(s["sources"])[0],
        "personal_notes": personal_information(s["sources"])[1],
        "category_rows": _category_rows(s),
        "field_rows": _field_rows(s),
        "subfield_rows": [
            [r["category"], r["field"], r["subfield"], r["count"]] for r in s["subfields"]
        ],
        "format_rows": _format_rows(s),
        "image_rows": _image_rows(s),
        "build_drops": [[d["stage"], d["reason"], d["count"]] for d in s["build"]["drops"]],
        "publish_drops": [[d["stage"], d["reason"], d["count"]] for d in s["publish_drops"]],
        "selection_rows": [
            [r["category"], r["field"], r["target"], r["available"], r["selected"]]
            for r in s["selection"] or []
        ],
        "clip_untrained": clip_is_untrained(clip["models"]),
        "clip_thresholds": dict(sorted((flat.get("thresholds") or {}).items())),
        "clip_top_fraction": dict(sorted((flat.get("keep_top_fraction") or {}).items())),
        "clip_settings_json": _json_block(settings_view(clip["settings"])),
        "dedupe_settings_json": _json_block(settings_view(dedupe)) if dedupe else "",
        "conflict_rows": [
            [c["kept"], c["kept_answer"], c["dropped"], c["dropped_answer"]]
            for c in ((dedupe or {}).get("label_conflict_list") or [])[:MAX_CONFLICT_ROWS]
        ],
        "protocol": agreement.get("protocol") if isinstance(agreement, dict) else None,
        "agreement_view": agreement_view(agreement) if annotations_used else None,
        "coverage_rows": _coverage_rows(ann) if annotations_used else [],
        "audit_review_rows": audit_review_table(ann.get("audit_review") or []),
        "annotators": n_annotators if isinstance(n_annotators, int) else None,
        "other_languages": {c: n for c, n in s["languages"].items() if c not in ("en", "und")},
        "release_citation": release_citation(s, version, mmloom_version),
        "citations": _citations(),
        "prose": source_prose(),
        "audit": audit_tables(s.get("audit_patterns") or {"build": None, "released": {}}),
    }


_ENV = Environment(
    loader=PackageLoader("pipelines.publish", "templates"),
    autoescape=False,  # Markdown: source text goes through the `md` filter instead
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=StrictUndefined,
)
_ENV.filters["md"] = md


def _macros() -> Any:
    return _ENV.get_template("card_macros.md.j2").module


def render(
    summary: dict[str, Any],
    version: str,
    mmloom_version: str,
    files: list[tuple[str, int, int]],
    mmie: dict[str, Any],
    annotations_used: bool,
) -> str:
    """The full card text. ``files`` lists the data shards as ``(path, bytes, rows)``.

    card.md.j2 lays the card out; the header is huggingface_hub's ``DatasetCardData`` in
    YAML, and the rendered text is read back as a ``DatasetCard`` (as the Hub reads it).
    """
    data = card_data(summary, version, files, annotations_used)
    text = _ENV.get_template("card.md.j2").render(
        card_data=data.to_yaml(original_order=HEADER_KEYS),
        pretty_name=data.pretty_name,
        **card_context(summary, version, mmloom_version, mmie, annotations_used),
    )
    return str(DatasetCard(re.sub(r"\n{3,}", "\n\n", text)))
