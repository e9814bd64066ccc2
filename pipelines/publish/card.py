"""The dataset card (``README.md``): a Hugging Face YAML header and the release's statistics.

Every number comes from :func:`pipelines.publish.summary.summarize`, i.e. from the published
records. Text that comes from sources or inputs (subfield names, licences, drop reasons,
agreement figures) is escaped before it enters a Markdown table or HTML.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import yaml
from datasets import DatasetInfo

from pipelines.publish.shards import COLUMN_DOCS, FEATURES, SPLIT
from pipelines.publish.summary import (
    CATEGORY_NAMES,
    MMIE_CATEGORIES,
    MMIE_FIELDS,
    MMIE_FORMATS,
    MMIE_IMAGES_PER_QUESTION,
    MMIE_QUESTION_LENGTH,
    MMIE_TOTAL,
)
from sources import names as source_names

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

SOURCE_TITLES = {
    "vist": "VIST (Visual Storytelling, SIS)",
    "wikihow": "wikiHow (VGSI corpus)",
    "mathvista": "MathVista",
    "remi": "ReMI",
    "coco": "COCO 2017 (MIA-Bench-style items)",
}


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
    return "\n".join(lines)


def _citations() -> list[str]:
    """The five sources' CITATION.bib files, then MMIE's (MIA-Bench is in COCO's file)."""
    out = []
    for name in source_names():
        text = resources.files("sources").joinpath(name, "CITATION.bib").read_text("utf-8")
        out.append(text.strip())
    out.append(MMIE_BIB)
    return out


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return label
    return "100K<n<1M"


def header(summary: dict[str, Any], version: str, files: list[tuple[str, int, int]]) -> dict:
    """The YAML header: configs, dataset_info (features, split sizes), licences, tasks."""
    features = DatasetInfo(features=FEATURES)._to_yaml_dict()["features"]
    data_bytes = sum(size for _, size, _ in files)
    licences = summary["licences"]
    details = "; ".join(f"{s}: {' / '.join(v)}" for s, v in licences.items())
    return {
        "pretty_name": f"mmloom {summary['build']['name'] or 'release'} {version}",
        "language": ["en"],
        "license": "other",
        "license_name": "mixed-source-licences",
        "license_details": "Each record keeps its source's licence (provenance.license, "
        f"images[].license). Per source: {details}",
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
    yaml_text = yaml.safe_dump(
        header(s, version, files), sort_keys=False, allow_unicode=True, width=100
    )
    parts: list[str] = [f"---\n{yaml_text}---\n"]
    parts.append(
        f"# {md(s['build']['name'] or 'mmloom')} benchmark, release {md(version)}\n\n"
        f"An MMIE-style interleaved image-text benchmark built with mmloom {md(mmloom_version)} "
        f"from public datasets: **{total} items** in one `{SPLIT}` split. Build config sha256 "
        f"`{md(s['build']['config_sha256'])}`; file checksums in `manifest.json`.\n"
    )
    parts.append(
        "## Loading\n\n```python\nfrom datasets import load_dataset\n\n"
        f'ds = load_dataset("parquet", data_dir="data")["{SPLIT}"]  # or the Hub repo id\n'
        'ds[0]["question"]  # [{"text": ..., "image": <PIL.Image>}, ...] in reading order\n'
        "```\n\n"
        "`mmie/data.json` with `mmie/images/` is the same benchmark in MMIE's evaluation input "
        "format: run MMIE's scorer with `--input_dir mmie --input_name data.json`.\n"
    )
    # counts
    cat_rows = [
        [
            c,
            CATEGORY_NAMES[c],
            n,
            _pct(n, total),
            MMIE_CATEGORIES.get(c, "-"),
            _pct(MMIE_CATEGORIES[c], MMIE_TOTAL) if c in MMIE_CATEGORIES else "-",
        ]
        for c, n in s["categories"].items()
    ]
    cat_rows.append(["total", "", total, "100.00%" if total else "-", MMIE_TOTAL, "100.00%"])
    parts.append(
        "## Counts\n\n### Per category\n\n"
        + _table(["category", "name", "items", "share", "MMIE items", "MMIE share"], cat_rows)
        + "\n"
    )
    field_rows = []
    for key, n in s["fields"].items():
        cat, fld = key.split("/", 1)
        field_rows.append([cat, fld, n, MMIE_FIELDS.get((cat, fld), "-")])
    parts.append(
        "### Per field\n\nMMIE published field counts for SA and PBL only (MSR is one block "
        "of 3,616).\n\n" + _table(["category", "field", "items", "MMIE items"], field_rows) + "\n"
    )
    parts.append(
        "### Per subfield\n\n"
        + _table(
            ["category", "field", "subfield", "items"],
            [[r["category"], r["field"], r["subfield"], r["count"]] for r in s["subfields"]],
        )
        + "\n"
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
        + f"\n\nMultiple-choice + open-ended = {ft['multiple_choice'] + ft['open_ended']} "
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
        + "\n"
    )
    # layout
    parts.append(
        "## Row layout\n\n"
        + _table(["column", "content"], [[k, v] for k, v in COLUMN_DOCS.items()], trusted=True)
        + "\n\nShards hold at most 100 rows per row group so the Hugging Face viewer can read "
        "rows with images.\n"
    )
    # quality gates
    build = s["build"]
    drop_rows = [[d["stage"], d["reason"], d["count"]] for d in build["drops"]]
    totals = build.get("totals") or {}
    parts.append(
        "## How the items were selected\n\n### Build gates\n\n"
        f"The build read {totals.get('read', '-')} source units and wrote "
        f"{totals.get('written', '-')} records (reconciled: {build.get('reconciled')}). "
        "Drops by stage and reason:\n\n"
        + (_table(["stage", "reason", "count"], drop_rows) if drop_rows else "None.")
        + "\n"
    )
    clip = s["clip"]
    if clip["scored_records"]:
        clip_text = (
            f"{clip['scored_records']} of {total} records scored with "
            f"{md(', '.join(clip['models']))} (cosine similarity of each image with its text)."
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
    parts.append("### CLIP image-text scores\n\n" + clip_text + "\n")
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
    parts.append("### Deduplication\n\n" + dedupe_text + "\n")
    if dedupe and "label_conflicts" in dedupe:
        parts.append(label_conflicts_section(dedupe))
    ann = s["annotation"]
    if annotations_used:
        agreement = ann["agreement"]
        protocol = agreement.get("protocol") if isinstance(agreement, dict) else None
        ann_text = (
            f"{ann['annotated']} published items carry a human decision "
            f"({', '.join(f'{md(k)}: {v}' for k, v in ann['verdicts'].items()) or 'none'}; "
            f"{ann['corrected']} with a corrected field or subfield; "
            f"{ann['mean_responses']} responses per item on average). Rejected items are "
            "excluded; corrections were re-validated against the record schema.\n\n"
            f"Protocol: {md(protocol) if protocol else DEFAULT_PROTOCOL}.\n\n"
            "Agreement:\n\n" + (_json_block(agreement) if agreement is not None else "not provided")
        )
    else:
        ann_text = (
            "Not annotated: this release was published without human annotation; its items "
            "passed the automated gates only."
        )
    parts.append("### Human annotation\n\n" + ann_text + "\n")
    pub_rows = [[d["stage"], d["reason"], d["count"]] for d in s["publish_drops"]]
    parts.append(
        "### Publish\n\n"
        + (_table(["stage", "reason", "count"], pub_rows) if pub_rows else "Nothing dropped.")
        + " Each dropped item is listed in `dropped.jsonl`.\n"
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
            + "\n"
        )
    # MMIE export
    parts.append(
        "## MMIE format export\n\n"
        f"`mmie/data.json` holds {mmie['items']} items (SA, PBL, MSR) and `mmie/images/` "
        f"{mmie['images']} images. MMIE's scorer (`dataset.py`) would truncate the answers "
        f"of {len(mmie['truncated'])} items (it stops reading an answer once 3 images in total "
        f"have been read) and skip {len(mmie['skipped'])} items (more than 4 images); "
        f"{len(mmie['more_than_3_images'])} items have more than 3 images. "
        f"{len(mmie['not_exported'])} IF items are not exported: MMIE's scorer has no prompt "
        "for them. All are listed in `mmie/scorer_limits.json`.\n"
    )
    # sources
    src_rows = [
        [
            SOURCE_TITLES.get(name, name),
            n,
            " / ".join(s["licences"][name]),
            " / ".join(s["image_licences"][name]),
        ]
        for name, n in s["sources"].items()
    ]
    parts.append(
        "## Sources and licences\n\n"
        + _table(["source", "items", "licence (records)", "licence (images)"], src_rows)
        + "\n"
    )
    parts.append(
        "## Known limitations\n\n"
        "- Every source is public (VIST, wikiHow, MathVista, ReMI, COCO), and MathVista is "
        "assembled from public test sets: items may have leaked into the pretraining data of "
        "the models evaluated.\n"
        "- Categories follow sources (SA = VIST, PBL = wikiHow, MSR = MathVista + ReMI, "
        "IF = COCO), so category scores partly measure source style.\n"
        "- References for SA and PBL are one acceptable continuation, not the only one; MSR "
        "references are text only.\n"
        "- MMIE's scorer reads at most 3 images per item and skips items with more than 4 "
        "(see above); scores from different judges are not comparable.\n"
        "- The restructuring rules (split points, prompts) are mmloom's; MMIE's own are "
        "unpublished, so this is an MMIE-style benchmark, not a copy of MMIE.\n"
    )
    parts.append(
        "## Citation\n\nCite the sources and the benchmarks whose format this follows "
        "(MMIE; MIA-Bench for the IF items):\n\n```bibtex\n" + "\n\n".join(_citations()) + "\n```\n"
    )
    return "\n".join(parts)
