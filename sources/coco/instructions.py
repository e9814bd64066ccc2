"""COCO -> MIA-Bench-style layered instructions: facts, deterministic choices, the text.

Pure functions, no Beam. One item (see :mod:`sources.coco.join`) gets a layered instruction
of 2-5 MIA-Bench components (``describe`` first), chosen deterministically from the option
``seed`` and the image id, built from the image's own captions and instances so that every
component is answerable and checkable (:func:`build_components`), with its text
(:func:`instruction_text`), reference answer (:func:`reference_text`) and complexity.

Reason (restructure stage): ``not_enough_facts`` (fewer usable component types than
``min_components``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from schemas.errors import PipelineConfigError, RecordError
from sources.base import Item, source_options

# Weight patterns (MIA-Bench's common ones; 5 components share the 10 points equally).
WEIGHTS: dict[int, list[int]] = {2: [6, 4], 3: [4, 3, 3], 4: [4, 2, 2, 2], 5: [2, 2, 2, 2, 2]}
# How often each component count is drawn (MIA-Bench: 204 / 155 / 40 / 1 of 400 items;
# 5 is raised to 3 so that the largest layered instructions occur at all).
COUNT_WEIGHTS: dict[int, int] = {2: 50, 3: 35, 4: 12, 5: 3}
# Relative frequency of the non-describe component types (MIA-Bench occurrences, rounded;
# math and perspective are raised a little because COCO supports them well).
TYPE_WEIGHTS: dict[str, int] = {
    "mention": 22,
    "length_limit": 21,
    "linguistics": 14,
    "grammar": 8,
    "math": 6,
    "perspective": 4,
}
# Order of the components after ``describe`` in the instruction.
TYPE_ORDER = ("perspective", "length_limit", "mention", "math", "grammar", "linguistics")
PERSONA_SUPERCATEGORIES = ("person", "animal")
MAX_COUNT = 10

_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
_PLURALS = {
    "person": "people",
    "mouse": "mice",
    "sheep": "sheep",
    "skis": "pairs of skis",
    "scissors": "pairs of scissors",
    "knife": "knives",
    "broccoli": "pieces of broccoli",
}
_DESCRIBE = (
    "Describe the scene in this image",
    "Explain what is happening in this picture",
    "Describe what you see in this photo",
    "Narrate the moment captured in this image",
)
_GRAMMAR = {
    "present_tense": ("Write in the present tense", "is written in the present tense"),
    "past_tense": (
        "Write in the past tense",
        "is written in the past tense",
    ),
    "passive_voice": (
        "Use the passive voice in at least one sentence",
        "has at least one sentence in the passive voice",
    ),
    "first_person": (
        "Write in the first person as an onlooker at the scene",
        "is written in the first person",
    ),
}
_LINGUISTICS = {
    "simile": ("Include exactly one simile", {"device": "simile", "count": 1}),
    "metaphor": ("Include one metaphor", {"device": "metaphor", "count": 1}),
    "rhetorical_question": (
        "End with a rhetorical question",
        {"device": "rhetorical_question", "position": "end"},
    ),
    "poem": ("Write the answer as a four-line poem", {"form": "poem", "lines": 4}),
}
_LINGUISTICS_CHECK = {
    "simile": "contains exactly one simile",
    "metaphor": "contains a metaphor",
    "rhetorical_question": "ends with a rhetorical question",
    "poem": "is a poem of exactly four lines",
}


def component_range(options: dict[str, Any]) -> tuple[int, int]:
    """The ``min_components``/``max_components`` options, checked to lie within 2-5."""
    options = source_options("coco", options)
    lo = int(options["min_components"])
    hi = int(options["max_components"])
    if not (2 <= lo <= 5 and 2 <= hi <= 5):
        raise PipelineConfigError(
            f"sources.coco.min_components/max_components must be within 2-5; got {lo}, {hi}"
        )
    return lo, hi


# --------------------------------------------------------------------------------------
# Restructuring: facts, deterministic choices, the layered instruction
# --------------------------------------------------------------------------------------


class Chooser:
    """Deterministic choices from sha256 of ``(seed, image id, label)``; no global RNG and
    no ``hash()``, so results are the same on every machine and Python version."""

    def __init__(self, seed: int, image_id: str) -> None:
        self._key = f"coco|{seed}|{image_id}"

    def _int(self, label: str) -> int:
        digest = hashlib.sha256(f"{self._key}|{label}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def unit(self, label: str) -> float:
        """A number in (0, 1)."""
        return (self._int(label) + 0.5) / 2**64

    def choice(self, label: str, seq: Sequence[Any]) -> Any:
        return seq[self._int(label) % len(seq)]

    def weighted(self, label: str, weights: dict[Any, int]) -> Any:
        total = sum(weights.values())
        point = self._int(label) % total
        for value, weight in weights.items():
            if point < weight:
                return value
            point -= weight
        raise AssertionError("unreachable")

    def sample(self, label: str, weights: dict[str, int], k: int) -> list[str]:
        """``k`` distinct keys, weighted, without replacement (Efraimidis-Spirakis)."""
        keyed = sorted(
            weights, key=lambda v: self.unit(f"{label}|{v}") ** (1.0 / weights[v]), reverse=True
        )
        return keyed[:k]


def plural(name: str) -> str:
    """English plural of a COCO category name (irregular ones from a table)."""
    if name in _PLURALS:
        return _PLURALS[name]
    if name.endswith(("s", "sh", "ch", "x")):
        return name + "es"
    return name + "s"


def the_object(name: str, count: int) -> str:
    return f"the {name}" if count == 1 else f"the {plural(name)}"


def category_stats(instances: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """category name -> {category_id, supercategory, count, crowd, area}, sorted by name."""
    stats: dict[str, dict[str, Any]] = {}
    for inst in instances:
        s = stats.setdefault(
            inst["category"],
            {
                "category_id": inst["category_id"],
                "supercategory": inst["supercategory"],
                "count": 0,
                "crowd": 0,
                "area": 0.0,
            },
        )
        if inst["iscrowd"]:
            s["crowd"] += 1
        else:
            s["count"] += 1
        s["area"] += float(inst["area"])
    return dict(sorted(stats.items()))


def dominant_supercategory(instances: list[dict[str, Any]]) -> str | None:
    """The supercategory with the largest total instance area (crowd regions included);
    ties go to the alphabetically first name. None when the image has no instances."""
    area: dict[str, float] = {}
    for inst in instances:
        area[inst["supercategory"]] = area.get(inst["supercategory"], 0.0) + float(inst["area"])
    if not area:
        return None
    return min(area, key=lambda sc: (-area[sc], sc))


def _available_types(stats: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Component type -> the categories it can use (empty list: needs no category)."""
    mentionable = [n for n, s in stats.items() if s["count"] >= 1]
    countable = [n for n, s in stats.items() if s["crowd"] == 0 and 1 <= s["count"] <= MAX_COUNT]
    personas = [
        n
        for n, s in stats.items()
        if s["supercategory"] in PERSONA_SUPERCATEGORIES and s["count"] >= 1
    ]
    out: dict[str, list[str]] = {"length_limit": [], "grammar": [], "linguistics": []}
    if mentionable:
        out["mention"] = mentionable
    if countable:
        out["math"] = countable
    if personas:
        out["perspective"] = personas
    return out


def _component(text: str, ctype: str, facts: dict[str, Any]) -> dict[str, Any]:
    return {"text": text, "type": ctype, "weight": 0, "facts": facts}


def build_components(item: Item, options: dict[str, Any]) -> list[dict[str, Any]]:
    """The layered instruction's components, ``describe`` first, weights summing to 10.

    Raises:
        RecordError(not_enough_facts): the image supports fewer component types than
        ``min_components`` (e.g. 5 asked of an image without instance annotations).
    """
    lo, hi = component_range(options)
    pick = Chooser(int(source_options("coco", options)["seed"]), item["source_id"])
    stats = category_stats(item["instances"])
    available = _available_types(stats)
    most = min(hi, 1 + len(available))
    if most < lo:
        raise RecordError(
            "not_enough_facts",
            f"image {item['source_id']} supports {1 + len(available)} component types "
            f"({', '.join(['describe', *sorted(available)])}); min_components is {lo}",
        )
    n = pick.weighted("n", {k: w for k, w in COUNT_WEIGHTS.items() if lo <= k <= most})
    chosen = set(pick.sample("types", {t: TYPE_WEIGHTS[t] for t in available}, n - 1))

    captions = item["captions"]
    comps = [
        _component(
            pick.choice("describe", _DESCRIBE),
            "describe",
            {"captions": [c["text"] for c in captions], "caption_ids": [c["id"] for c in captions]},
        )
    ]
    used: set[str] = set()
    exact_sentences = False
    for ctype in TYPE_ORDER:
        if ctype not in chosen:
            continue
        if ctype == "perspective":
            name = pick.choice("persona", available["perspective"])
            s = stats[name]
            who = f"the {name}" if s["count"] == 1 else f"one of the {plural(name)}"
            comps.append(
                _component(
                    f"Answer as if you were {who} in the picture",
                    ctype,
                    {"role": name, "supercategory": s["supercategory"], "count": s["count"]},
                )
            )
        elif ctype == "length_limit":
            if pick.unit("length") < 0.5:
                k = pick.choice("sentences", (2, 3, 4))
                exact_sentences = True
                comps.append(
                    _component(
                        f"Use exactly {_NUMBER_WORDS[k]} sentences",
                        ctype,
                        {"unit": "sentences", "exact": k},
                    )
                )
            else:
                w = pick.choice("words", (40, 50, 60, 80))
                comps.append(
                    _component(f"Use at most {w} words", ctype, {"unit": "words", "max": w})
                )
        elif ctype == "mention":
            names = available["mention"]
            if len(names) >= 2 and pick.unit("mention-two") < 0.35:
                a, b = pick.sample("mention-pair", dict.fromkeys(names, 1), 2)
                pair = sorted([a, b])
                first, second = (the_object(x, stats[x]["count"]) for x in pair)
                text = f"Mention both {first} and {second}"
                picked = pair
            else:
                name = pick.choice("mention-one", names)
                text = f"Mention {the_object(name, stats[name]['count'])}"
                picked = [name]
            used.update(picked)
            counts = [stats[x]["count"] for x in picked]
            comps.append(_component(text, ctype, {"categories": picked, "counts": counts}))
        elif ctype == "math":
            names = [x for x in available["math"] if x not in used] or available["math"]
            name = pick.choice("count", names)
            used.add(name)
            count = stats[name]["count"]
            comps.append(
                _component(
                    f"State how many {plural(name)} there are in the image",
                    ctype,
                    {
                        "category": name,
                        "category_id": stats[name]["category_id"],
                        "count": count,
                    },
                )
            )
        elif ctype == "grammar":
            rules = [r for r in _GRAMMAR if not (r == "first_person" and "perspective" in chosen)]
            rule = pick.choice("grammar", rules)
            comps.append(_component(_GRAMMAR[rule][0], ctype, {"rule": rule}))
        elif ctype == "linguistics":
            kinds = [k for k in _LINGUISTICS if not (k == "poem" and exact_sentences)]
            kind = pick.choice("linguistics", kinds)
            text, facts = _LINGUISTICS[kind]
            comps.append(_component(text, ctype, dict(facts)))
    for comp, weight in zip(comps, WEIGHTS[len(comps)]):
        comp["weight"] = weight
    return comps


def complexity(components: list[dict[str, Any]]) -> str:
    """The complexity level, by the written definition in sources/coco/README.md:

    * ``creative``: a ``perspective`` component or a poem form (the answer must change
      voice or form, not just obey a constraint);
    * ``complex``: otherwise, 4 or 5 components;
    * ``advanced``: otherwise, 3 components including a ``grammar`` or ``linguistics`` one;
    * ``intermediate``: otherwise, 3 components, or 2 whose second is ``grammar``,
      ``linguistics`` or ``math``;
    * ``basic``: 2 components whose second is ``length_limit`` or ``mention``.
    """
    types = [c["type"] for c in components]
    if "perspective" in types or any(c["facts"].get("form") == "poem" for c in components):
        return "creative"
    if len(types) >= 4:
        return "complex"
    stylistic = {"grammar", "linguistics"} & set(types)
    if len(types) == 3:
        return "advanced" if stylistic else "intermediate"
    return "basic" if types[1] in ("length_limit", "mention") else "intermediate"


def instruction_text(components: list[dict[str, Any]]) -> str:
    """Join the components: the description as one sentence, the constraints as a second
    (``"Describe ... . Use exactly two sentences, mention the dog and write in the present
    tense."``)."""
    first, rest = components[0]["text"], [c["text"] for c in components[1:]]
    rest = [r[0].lower() + r[1:] for r in rest]
    rest[0] = rest[0][0].upper() + rest[0][1:]
    tail = rest[0] if len(rest) == 1 else ", ".join(rest[:-1]) + " and " + rest[-1]
    return f"{first}. {tail}."


def _check_line(comp: dict[str, Any]) -> str:
    f, t = comp["facts"], comp["type"]
    if t == "describe":
        return "the description agrees with the captions above"
    if t == "length_limit":
        if f["unit"] == "sentences":
            return f"the answer has exactly {_NUMBER_WORDS[f['exact']]} sentences"
        return f"the answer has at most {f['max']} words"
    if t == "mention":
        named = (the_object(n, c) for n, c in zip(f["categories"], f["counts"]))
        return "the answer names " + " and ".join(named)
    if t == "math":
        n, c = f["count"], f["category"]
        return f"the answer says there {'is' if n == 1 else 'are'} {n} {c if n == 1 else plural(c)}"
    if t == "grammar":
        return "the answer " + _GRAMMAR[f["rule"]][1]
    if t == "linguistics":
        kind = f.get("form") or f["device"]
        return "the answer " + _LINGUISTICS_CHECK[kind]
    if t == "perspective":
        return f'the answer speaks as the {f["role"]} in the first person ("I")'
    raise ValueError(f"unknown component type {t}")


def reference_text(item: Item, components: list[dict[str, Any]]) -> str:
    """The readable reference: the facts every component is checked against."""
    lines = [
        f"Reference facts from the COCO 2017 annotations of image {item['source_id']}.",
        "Captions (verbatim):",
    ]
    lines += [f"- {c['text']}" for c in item["captions"]]
    stats = category_stats(item["instances"])
    if stats:
        parts = []
        for name, s in stats.items():
            part = f"{name} x{s['count']}"
            if s["crowd"]:
                part += f" (+{s['crowd']} crowd region{'s' if s['crowd'] > 1 else ''})"
            parts.append(part)
        lines.append("Annotated objects: " + ", ".join(parts) + ".")
    else:
        lines.append("Annotated objects: none (no instance annotations for this image).")
    lines.append("Checks:")
    for i, comp in enumerate(components, 1):
        lines.append(f"{i}. {comp['type']} ({comp['weight']}/10): {_check_line(comp)}.")
    return "\n".join(lines)
