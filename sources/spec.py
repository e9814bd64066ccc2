"""What a source declares besides its reader, as data: fetch plans, card metadata, config options.

A source folder ``sources/<name>/`` (or any package registered with :func:`sources.register`)
holds, next to its code:

* ``checksums.tsv``: the published files (TFDS layout: url, size, sha256, filename); the URLs
  a fetch plan downloads come from here (:func:`published_urls`), nowhere else.
* ``card.yaml``: what the release's dataset card says about the source (:class:`CardInfo`).
* ``config.schema.json``: the source's block of the build config (JSON Schema; its keys, their
  defaults and descriptions). ``sources.config_schema()`` composes the full config schema
  from ``schemas/config.schema.json`` and every registered source's block.
* ``fetch.py`` (optional): ``FETCH``, a :class:`FetchSpec`: the splits ``mmloom fetch`` knows
  and the plan of files for the chosen ones, with how each is laid out (:class:`Place`,
  :class:`Unpack`). ``pipelines.fetch`` carries the plans out; a source only describes them.

This module imports nothing above ``schemas`` (sources are the second layer).
"""

from __future__ import annotations

import functools
import importlib
import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from schemas import with_defaults
from schemas.errors import MmloomError

CARD_FILE = "card.yaml"
CONFIG_SCHEMA_FILE = "config.schema.json"
CHECKSUMS_FILE = "checksums.tsv"
CITATION_FILE = "CITATION.bib"

# member name inside an archive -> path under <to>/<source>/, or None to leave it out
Select = Callable[[str], str | None]


# ---------------------------------------------------------------- fetch plans


@dataclass(frozen=True)
class Place:
    """Lay a downloaded file out at ``<to>/<source>/<path>`` (linked, or copied), once it
    looks whole (a ``.json`` or ``.parquet`` that is not truncated)."""

    path: str


@dataclass(frozen=True)
class Unpack:
    """Unpack the members of a downloaded archive that ``select`` maps to a path (all or
    nothing, within the fetch caps).

    Attributes:
        select: member name -> path under ``<to>/<source>/``, or None to leave it out.
        select_in: instead of ``select``: builds it from ``<to>/<source>/`` as laid out by
            the plan's earlier files (e.g. a listing that says which images to unpack);
            may raise :class:`schemas.errors.MmloomError`.
    """

    select: Select | None = None
    select_in: Callable[[Path], Select] | None = None

    def selector(self, root: Path) -> Select:
        if self.select_in is not None:
            return self.select_in(root)
        assert self.select is not None, "Unpack needs select or select_in"
        return self.select


Install = Place | Unpack
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def by_basename(wanted: dict[str, str]) -> Select:
    """Members whose file name is a key of ``wanted`` go to the mapped path, wherever they
    sit in the archive."""
    return lambda name: wanted.get(posixpath.basename(name))


def images_into(folder: str) -> Select:
    """Every image member, flattened into ``folder/<file name>``."""

    def select(name: str) -> str | None:
        base = posixpath.basename(name)
        if base.startswith(".") or not base.lower().endswith(IMAGE_EXTS):
            return None
        return f"{folder}/{base}"

    return select


@dataclass(frozen=True)
class FileJob:
    """One published file: where it comes from and how it is laid out.

    Attributes:
        filename: the row key in checksums.tsv and the name under ``downloads/`` (unique
            within the source).
        url: default URL (from checksums.tsv): ``http(s)://...`` or
            ``hf://datasets/<repo>@<revision>/<path>``; empty where no script can get it.
        install: how the verified file is laid out under ``<to>/<source>/``.
        manual: non-empty when the host cannot be scripted: where a person gets the file.
        size_note: the published size, for messages (``~35 GB``).
    """

    filename: str
    url: str
    install: Install
    manual: str = ""
    size_note: str = ""


@dataclass(frozen=True)
class Plan:
    """The files of the chosen splits, and the config block that points at the result
    (paths relative to the fetch folder)."""

    source: str
    splits: tuple[str, ...]
    jobs: list[FileJob]
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FetchOption:
    """A ``mmloom fetch`` option of one source (``--<flag>``), handed to its plan as
    ``options[key]``."""

    flag: str  # e.g. "--mathvista-layout"
    choices: tuple[str, ...]
    default: str
    help: str

    @property
    def key(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class FetchSpec:
    """What ``mmloom fetch`` knows about a source.

    Attributes:
        splits: the splits it can fetch; default_splits: those fetched without ``--split``.
        plan: ``(splits, options) -> Plan`` (options: the :attr:`options` values by key).
        single_split: a build reads one split at a time (fetch one at a time).
        options: the source's own fetch options.
    """

    splits: tuple[str, ...]
    default_splits: tuple[str, ...]
    plan: Callable[[tuple[str, ...], dict[str, Any]], Plan]
    single_split: bool = False
    options: tuple[FetchOption, ...] = ()


def published_urls(folder: Traversable) -> dict[str, str]:
    """``filename -> url`` of the rows of the source's ``checksums.tsv`` (comments and blank
    lines skipped; ``pipelines.fetch.checksums`` checks the sizes and sums)."""
    path = folder.joinpath(CHECKSUMS_FILE)
    if not path.is_file():
        return {}
    urls: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) == 4:
            urls[parts[3]] = parts[0]
    return urls


def package_urls(package: str) -> dict[str, str]:
    """:func:`published_urls` of the source package ``package`` (a module's ``__package__``)."""
    return published_urls(resources.files(package))


# ---------------------------------------------------------------- card metadata


@dataclass(frozen=True)
class CardInfo:
    """What the release's dataset card says about a source (``card.yaml``).

    Attributes:
        name: the short name the card's prose uses ("VIST", "wikiHow").
        title: the name in the card's tables ("VIST (Visual Storytelling, SIS)").
        category: the MMIE category its records fall in (SA, PBL, MSR, IF).
        licence: ``short`` (the licence in short), ``restrictions`` (what it restricts,
            Markdown), ``terms`` (links to its terms, Markdown). mmloom's own text: printed
            unescaped.
        phrases: optional pieces of the card's prose (see ``card.yaml`` of the bundled
            sources and README.md, "The sources"): ``non_commercial`` (what of the source a
            non-commercial licence covers), ``non_commercial_images`` (the same for its
            images), ``caveat`` (a licence warning), ``training`` (why it must not be trained
            on), ``commercial_use`` (what must not be used commercially), ``producers`` (who
            made the data), ``personal`` (a note on personal information), ``flickr_photos``
            (true: its images are Flickr photos), ``leakage`` (why its items may have leaked
            into pretraining data). A phrase two sources share is printed once.
        citation: the source's ``CITATION.bib``.
    """

    name: str
    title: str
    category: str
    licence: dict[str, str]
    phrases: dict[str, Any]
    citation: str

    def phrase(self, key: str) -> Any:
        return self.phrases.get(key)


CARD_KEYS = {"name", "title", "category", "licence", "phrases"}
LICENCE_KEYS = {"short", "restrictions", "terms"}
PHRASE_KEYS = {
    "non_commercial",
    "non_commercial_images",
    "caveat",
    "training",
    "commercial_use",
    "producers",
    "personal",
    "flickr_photos",
    "leakage",
}


def read_card(folder: Traversable, where: str) -> CardInfo:
    """The source's ``card.yaml`` and ``CITATION.bib``; a missing or malformed one is an error
    that names the file and what is wrong."""
    path = folder.joinpath(CARD_FILE)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MmloomError(f"{where}/{CARD_FILE}: cannot read it ({exc}); fix the file") from exc
    needed = {"name", "title", "category"}
    if not isinstance(data, dict) or set(data) - CARD_KEYS or not needed <= set(data):
        raise MmloomError(
            f"{where}/{CARD_FILE}: expected the keys name, title, category and optionally "
            f"licence and phrases; got {sorted(data) if isinstance(data, dict) else data!r}"
        )
    licence = data.get("licence") or {}
    phrases = data.get("phrases") or {}
    unknown = (set(licence) - LICENCE_KEYS) | (set(phrases) - PHRASE_KEYS)
    if unknown:
        raise MmloomError(
            f"{where}/{CARD_FILE}: unknown keys {sorted(unknown)}; "
            f"licence takes {sorted(LICENCE_KEYS)}, phrases {sorted(PHRASE_KEYS)}"
        )
    bib = folder.joinpath(CITATION_FILE)
    citation = bib.read_text("utf-8").strip() if bib.is_file() else ""
    return CardInfo(
        name=str(data["name"]),
        title=str(data["title"]),
        category=str(data["category"]),
        licence={k: str(v) for k, v in licence.items()},
        phrases=dict(phrases),
        citation=citation,
    )


# ---------------------------------------------------------------- config options


def read_config_block(folder: Traversable, where: str) -> dict[str, Any]:
    """The source's ``config.schema.json``: a JSON Schema object (``properties`` with
    descriptions and defaults), the block ``sources.<name>`` of the build config."""
    path = folder.joinpath(CONFIG_SCHEMA_FILE)
    try:
        block = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        where = f"{where}/{CONFIG_SCHEMA_FILE}"
        raise MmloomError(f"{where}: cannot read it ({exc}); fix the file") from exc
    if not isinstance(block, dict) or block.get("type") != "object" or "properties" not in block:
        raise MmloomError(f"{where}/{CONFIG_SCHEMA_FILE}: not a JSON Schema object with properties")
    return block


@functools.cache
def package_config_block(package: str) -> dict[str, Any]:
    """:func:`read_config_block` of source package ``package`` (cached)."""
    return read_config_block(resources.files(package), package.replace(".", "/"))


def options_with_defaults(package: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """``options`` with the defaults of source package ``package``'s config block."""
    return with_defaults(package_config_block(package)["properties"], options)


Hook = Callable[..., Any]


def _resolve(package: str, ref: Any) -> Any:
    """A hook given as ``"module:attr"`` (a module of ``package``), imported on first use;
    anything else as it is."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(f"{package}.{module}"), attr)


@dataclass(frozen=True)
class Source:
    """A registered source: everything mmloom knows about it, on one object.

    The hooks (reader, restructure, check_options) may be given as ``"module:attr"`` of the
    source's package and are imported on first use, so that the registry, the fetch plans and
    the card read a source without importing Beam (``mmloom fetch --help`` stays light).

    Attributes:
        name: the registry name (the package's last component).
        package: the source's package; its folder holds the data files below.
        reader: the ``Read<Source>`` transform class (a ``sources.base.SourceReader``): input
            files -> draft records (it calls :attr:`restructure` on every item it reads) + dead
            letters.
        restructure: ``(item, options) -> draft record``; raises ``RecordError``.
        check_options: checks a filled config block; raises ``PipelineConfigError``.
        card: what the dataset card says about it (``card.yaml``, ``CITATION.bib``).
        config_block: its block of the build config (``config.schema.json``).
        fetch: what ``mmloom fetch`` downloads for it (``fetch.py``); None: nothing.
        folder: the package's folder (``checksums.tsv`` and the files above).
    """

    name: str
    package: str
    reader_hook: Any
    restructure_hook: Any
    check_options_hook: Any
    card: CardInfo
    config_block: dict[str, Any]
    fetch: FetchSpec | None
    folder: Traversable

    @classmethod
    def define(
        cls,
        package: str,
        *,
        reader: Any,
        restructure: Any,
        check_options: Any,
        fetch: FetchSpec | None = None,
    ) -> Source:
        """The ``SOURCE`` of package ``package`` (its ``__name__``): the hooks given here
        (objects, or ``"module:attr"`` of the package), the data read from its folder."""
        folder = resources.files(package)
        where = package.replace(".", "/")
        return cls(
            name=package.rsplit(".", 1)[-1],
            package=package,
            reader_hook=reader,
            restructure_hook=restructure,
            check_options_hook=check_options,
            card=read_card(folder, where),
            config_block=read_config_block(folder, where),
            fetch=fetch,
            folder=folder,
        )

    @property
    def reader(self) -> Any:
        return _resolve(self.package, self.reader_hook)

    @property
    def restructure(self) -> Hook:
        return _resolve(self.package, self.restructure_hook)

    @property
    def check_options(self) -> Hook:
        return _resolve(self.package, self.check_options_hook)

    @property
    def checksums_file(self) -> Path:
        """The committed ``checksums.tsv`` (a real path: ``--register-checksums`` writes it)."""
        return Path(str(self.folder.joinpath(CHECKSUMS_FILE)))
