"""The contract every source reader follows (file helpers: ``schemas.fs``).

A source is one package, ``sources/<name>/`` (or one added with ``sources.register`` /
``MMLOOM_SOURCES``), whose ``__init__`` defines ``SOURCE = Source.define(__name__, ...)``:

* ``parse.py``: pure functions. ``restructure(item, options) -> draft record`` turns one
  *item* (one unit read from the source) into a draft record (``schemas.records``), or
  raises ``RecordError(reason, detail)``; ``check_options(options)`` checks a config block.
* ``reader.py``: ``Read<Source>(options)``, a thin :class:`SourceReader` subclass that
  supplies two hooks, ``list_files()`` (the input files, listed when the transform is built)
  and ``iter_units(path)`` (the units of one file). The base class owns everything else:
  the files → ParDo → ``DEAD`` plumbing, the restructure hook, the counters and the dead
  letters. Its output is a ``DoOutputsTuple`` with a main output ``drafts`` (every item
  restructured by the source's ``restructure``, as TFDS's ``_generate_examples`` yields
  finished examples) and a ``DEAD`` output of read-stage and restructure-stage dead letters.
  Every unit the reader sees ends up in exactly one of the two; the build counts both as
  ``read``. Optional *side files* that decorate the units of other files (MathVista's
  ``query.json``, VIST's DII files) come from a third hook, ``side_files()``: see
  :meth:`SourceReader.side_files`.
* ``fetch.py`` (optional): ``FETCH``, what ``mmloom fetch`` downloads (:mod:`sources.spec`).
* data files: ``card.yaml`` (what the dataset card says), ``config.schema.json`` (its config
  block), ``checksums.tsv`` (its published files), ``CITATION.bib``, ``fields.yaml`` (mapping
  table into ``schemas/taxonomy.yaml``), ``README.md`` (provenance, licence, the tables).

The one rejection protocol: ``iter_units`` yields, for every unit of the file, either the
unit's *item* or a ``RecordError`` whose ``source_id`` names the unit
(``as_record_error(exc, source_id)`` turns any exception on a unit into one). An exception
escaping ``iter_units`` ends the file and is one dead letter for the file: a RecordError keeps
its reason, anything else is ``file_error_reason`` (``malformed_file`` unless the reader says
otherwise). Parse-level generators in ``parse.py`` follow the same protocol. An item nested
deeper than :data:`MAX_ITEM_DEPTH` is a ``too_deeply_nested`` dead letter (later stages pickle,
validate and serialise items recursively). Every file a configured glob matches is read or
is a dead letter, whatever its name holds (``schemas.fs.match``); a name that is not UTF-8 is
a ``file_name_not_utf8`` dead letter.

Dead letters name no machine path: their ``detail`` has every configured source path
(:func:`option_roots`) cut off (:func:`scrub_paths`), and a whole-file ``source_id`` is the
file relative to its source path (:meth:`SourceReader.display`), so two builds of the same
inputs in different folders write the same dead letters.

An *item* is a plain picklable dict with at least ``source``, ``source_id``, ``split`` and
``source_file``; the rest is source-specific. Images inside items are references: a URI to
read later, or bytes already embedded in the source (parquet).

``options`` is the source's block from the YAML config with paths already resolved to
absolute paths or URIs (see ``pipelines.config``).

Reads are bounded: a reader reads its files through :meth:`SourceReader.open_source` /
:meth:`SourceReader.read_source` (``schemas.fs.open_bounded``), with the build's
``limits.max_file_bytes`` and the folder a symlinked file must not leave. A FIFO, a device,
a file over the cap or a link out of the folder is one dead letter for the file
(``not_a_regular_file``, ``file_too_large``, ``path_escapes_root``). Images are read later,
by ``LoadImages``: a reader gives each image URI its folder (``image_root`` in items,
``root`` in ``DraftImage``).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import apache_beam as beam

from schemas import load_schema, with_defaults
from schemas.deadletter import STAGE_READ, STAGE_RESTRUCTURE
from schemas.errors import EnvironmentFault, PipelineConfigError, RecordError
from schemas.fs import display_path, match, open_bounded, read_bytes, read_text
from schemas.stage import RecordStage, StageReason
from sources.spec import Source as Source  # a source's own folder: Source.define
from sources.spec import options_with_defaults

Item = dict[str, Any]
Unit = Item | RecordError  # what ``iter_units`` yields

# Items nested deeper than this are dead letters: pickling (between Beam stages), schema
# validation and ``json.dumps`` all recurse, and fail at a few hundred levels. Real items are
# under 10 levels deep.
MAX_ITEM_DEPTH = 100


class ReadReason(StageReason):
    """The reasons of every reader (each source adds its own: its README lists them)."""

    MALFORMED_FILE = (
        "malformed_file",
        "a whole input file cannot be parsed (the default file reason; a source may name it "
        "otherwise)",
    )
    TOO_DEEPLY_NESTED = (
        "too_deeply_nested",
        f"an item nested more than {MAX_ITEM_DEPTH} levels deep",
    )
    FILE_NAME_NOT_UTF8 = "file_name_not_utf8", "a matched file whose name is not UTF-8"
    NOT_A_REGULAR_FILE = "not_a_regular_file", "an input path that is a FIFO, device or socket"
    FILE_TOO_LARGE = "file_too_large", "an input file over `limits.max_file_bytes`"
    PATH_ESCAPES_ROOT = "path_escapes_root", "a symlinked input file outside its source folder"


class RestructureRecords(RecordStage):
    """The bookkeeping of the restructure step every reader runs on its items (not a
    transform of its own: :meth:`SourceReader.restructure_item` calls the source's
    ``restructure`` hook inside the reader's ParDo, and rejects and counts through this
    class).

    Dead letters: stage ``restructure``; the reasons are each source's (its ``parse.py``
    raises ``RecordError(reason, ...)``), listed in its README. Counters (namespace
    ``RestructureRecords``, the stage's name from before it moved into the readers): ``out``,
    ``dropped_<reason>``.
    """

    stage = STAGE_RESTRUCTURE
    main = "drafts"
    more_reasons = "each source's restructure reasons: see its README (`sources/<name>/README.md`)"


# the counter namespace of the restructure hook
RESTRUCTURE_NAMESPACE = RestructureRecords.namespace
TOO_DEEP = ReadReason.TOO_DEEPLY_NESTED
# a matched file whose name holds bytes that are not UTF-8 (kept by Python as lone surrogates)
BAD_NAME = ReadReason.FILE_NAME_NOT_UTF8


def utf8(text: str) -> bool:
    """Can ``text`` be written as UTF-8 (no lone surrogates from an undecodable file name)?"""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape_name(path: str) -> str:
    """``path`` with each byte that is not UTF-8 written ``\\xNN`` (printable, and UTF-8)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def nesting_depth(value: Any, limit: int = MAX_ITEM_DEPTH) -> int:
    """How deeply ``value``'s dicts, lists and tuples nest (a scalar is 0), counted without
    recursion; counting stops once ``limit`` is exceeded (the result is then ``limit + 1``)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Iterable[Any] = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        depth += 1
        if depth > limit:
            return limit + 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


def option_roots(options: dict[str, Any]) -> list[str]:
    """The configured paths of a source (option values that are absolute paths or URIs)."""
    return sorted(
        v for v in options.values() if isinstance(v, str) and (v.startswith("/") or "://" in v)
    )


def scrub_paths(text: str, roots: Iterable[str]) -> str:
    """``text`` with each configured path ``root`` (and the folder holding it) cut off, so
    ``/home/me/data/mathvista/testmini.json`` reads ``testmini.json`` for the root
    ``/home/me/data/mathvista``: dead letters must not depend on where a build's inputs lie.
    A glob or file root counts by its folder."""
    bases = {r.rstrip("/") for r in roots} - {""}
    prefixes = {
        r
        for base in bases
        for r in (base, posixpath.dirname(base))
        if r.strip("/") and not any(ch in r for ch in "*?[")
    }
    for prefix in sorted(prefixes, key=len, reverse=True):
        text = text.replace(prefix + "/", "")
    for base in sorted(bases, key=len, reverse=True):  # a root named alone: its own name
        text = text.replace(base, posixpath.basename(base))
    return text


def source_relative(path: str, options: dict[str, Any]) -> str:
    """How records and dead letters name a source's file ``path``: relative to the source's
    root, the configured path it was found under (:func:`scrub_paths`: a configured folder,
    or the folder of a configured file or glob), else by its base name. Never a path of the
    build machine: ``/home/me/coco/annotations/captions_val2017.json`` under the root
    ``/home/me/coco`` reads ``annotations/captions_val2017.json``. A ``#fragment`` (an image
    inside a Parquet file) is kept."""
    shown = scrub_paths(path, option_roots(options))
    if shown.startswith("/") or "://" in shown:
        return display_path(path, None)
    return shown


def source_options(name: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """A source's config block with its schema's defaults filled in (the source's
    ``config.schema.json``). The build's loader has done this already; readers and
    ``restructure`` apply it again on entry (a no-op then) so that a caller with a partial
    block (a test, a notebook) gets the same defaults, and no source repeats one in code."""
    from sources import package_of  # the registry imports this module

    return options_with_defaults(package_of(name), options)


class SourceReader(RecordStage):
    """Base of every ``Read<Source>``: input files -> items + read-stage dead letters.

    Subclasses set ``source`` (the registry name) and ``namespace`` (the counter namespace,
    the class name), and implement :meth:`list_files` and :meth:`iter_units`; optionally
    :meth:`setup` (per-worker state, e.g. a listed images folder), :meth:`file_unit` (the
    dead-letter id of a whole file), ``file_error_reason``, and :meth:`side_files` with
    :meth:`load_side_file` (optional side files, one dead letter each when broken).

    Args:
        options: the source's config block (paths resolved).
        max_file_bytes: the read cap on one input file (the build config's
            ``limits.max_file_bytes``); None: the schema's default.

    Input: the pipeline root. The files are listed when the transform is built; none is a
    ``PipelineConfigError``.

    Output: a ``DoOutputsTuple``: main ``drafts`` (each item :meth:`iter_units` yields,
    restructured by the source's ``restructure`` hook, :meth:`restructure_item`); ``DEAD``:
    read-stage dead letters (reasons: :class:`ReadReason` and the source's own) and
    restructure-stage ones (:class:`RestructureRecords`).

    Counters (namespace ``namespace``): ``files``, ``items``, ``dropped_<reason>``,
    ``side_files``; (namespace ``RestructureRecords``): ``out``, ``dropped_<reason>``.
    """

    source: ClassVar[str]
    namespace: ClassVar[str]
    file_error_reason: ClassVar[str] = ReadReason.MALFORMED_FILE
    stage = STAGE_READ
    Reason = ReadReason
    main = "drafts"
    more_reasons = "and each source's own reasons: see its README (`sources/<name>/README.md`)"

    def __init__(self, options: dict[str, Any], max_file_bytes: int | None = None) -> None:
        super().__init__()
        self.options = source_options(self.source, options)  # schema defaults, filled once
        self.max_file_bytes = max_file_bytes or default_limits()["max_file_bytes"]
        self.files = self.list_files()
        if not self.files:
            raise PipelineConfigError(
                f"sources.{self.source}: no input file found; check its paths in the config"
            )
        self.side = sorted(set(self.side_files()) - set(self.files))
        self._side_cache: dict[str, Any] = {}
        from sources import get_source  # the registry imports this module

        self._restructure = get_source(self.source).restructure

    # --- hooks ---------------------------------------------------------------------------

    def list_files(self) -> list[str]:
        """The input files, one ParDo element each (sorted, for determinism)."""
        raise NotImplementedError

    def setup(self) -> None:
        """Per-worker state, built once per DoFn instance before any file is read."""

    def iter_units(self, path: str) -> Iterator[Unit]:
        """Every unit of file ``path``: its item, or a RecordError naming it in ``source_id``."""
        raise NotImplementedError

    def file_unit(self, path: str) -> str:
        """The ``source_id`` of a dead letter for the whole file ``path``."""
        return self.display(path)

    def side_files(self) -> list[str]:
        """Optional side files that decorate the units of the input files (called once, when
        the transform is built; default none).

        Each side file is its own ParDo element, after the input files: it holds no unit, so
        a good one yields nothing, and a broken one (:meth:`load_side_file` raises) is exactly
        one dead letter, named by :meth:`display`, however many files and workers use it. The
        input files get its content through :meth:`side_file`, loaded once per worker; a
        broken one is ``None`` there, and their units go on without it.
        """
        return []

    def load_side_file(self, path: str) -> Any:
        """Load and check side file ``path``; raise (ideally a RecordError) when broken."""
        raise NotImplementedError

    # --- helpers for the hooks ------------------------------------------------------------

    def side_file(self, path: str) -> Any:
        """Side file ``path`` as :meth:`load_side_file` gives it, loaded once per worker;
        ``None`` when it is broken (its own dead letter reports it)."""
        if path not in self._side_cache:
            try:
                self._side_cache[path] = self.load_side_file(path)
            except Exception:  # reported once, by the side file's own element
                self._side_cache[path] = None
        return self._side_cache[path]

    def display(self, path: str) -> str:
        """``path`` as records and dead letters name it (:func:`source_relative`)."""
        return source_relative(path, self.options)

    def match_option(self, key: str) -> list[str]:
        """Files matching the path or glob ``options[key]`` (every file whose name matches,
        whatever characters it holds: ``schemas.fs.match``); none, or a folder that cannot
        be listed, is a PipelineConfigError."""
        pattern = self.options[key]
        try:
            files = match(pattern)
        except OSError as exc:  # a folder on the way cannot be listed
            raise PipelineConfigError(
                f"sources.{self.source}.{key}: cannot list {pattern}: {exc.strerror} "
                f"({exc.filename}); check the folder's permissions"
            ) from exc
        if not files:
            raise PipelineConfigError(f"sources.{self.source}.{key}: no file matches {pattern}")
        return files

    def open_source(self, path: str, root: str | None, decompress: bool = False) -> Any:
        """Open input file ``path`` under the read rules (``schemas.fs.open_bounded``):
        ``root`` is the folder it was found in (None: the config names the file itself)."""
        return open_bounded(path, max_bytes=self.max_file_bytes, root=root, decompress=decompress)

    def read_source(self, path: str, root: str | None) -> bytes:
        """All of input file ``path`` under the read rules (see :meth:`open_source`)."""
        return read_bytes(path, max_bytes=self.max_file_bytes, root=root)

    def read_source_text(self, path: str, root: str | None) -> str:
        """:meth:`read_source` decoded as UTF-8; bytes that are not UTF-8 are the file's
        ``file_error_reason`` (a broken file, not a bug)."""
        try:
            return read_text(path, max_bytes=self.max_file_bytes, root=root)
        except UnicodeDecodeError as exc:
            detail = f"{self.display(path)}: not UTF-8 (byte {exc.start}: {exc.reason})"
            raise RecordError(self.file_error_reason, detail) from exc

    # --- the plumbing ---------------------------------------------------------------------

    def read_file(self, path: str) -> Iterator[Item | beam.pvalue.TaggedOutput]:
        """Items and counted dead letters of one file (what the ParDo yields)."""
        if path in self.side:
            yield from self._check_side_file(path)
            return
        self.count("files")
        if not utf8(path):  # its items could name it nowhere (records, stats, dead letters)
            shown = self.display(escape_name(path))
            yield self._reject(BAD_NAME, shown, f"{shown}: the file name is not UTF-8; rename it")
            return
        try:
            for unit in self.iter_units(path):
                if isinstance(unit, RecordError):
                    sid = unit.source_id if unit.source_id is not None else self.file_unit(path)
                    yield self._reject(unit.reason, sid, unit.detail)
                elif nesting_depth(unit) > MAX_ITEM_DEPTH:
                    sid = unit.get("source_id") or self.file_unit(path)
                    detail = f"nested more than {MAX_ITEM_DEPTH} levels deep"
                    yield self._reject(TOO_DEEP, str(sid), detail)
                else:
                    self.count("items")
                    yield unit
        except Exception as exc:  # the file itself is the unit; never a crash
            yield self._reject_file(path, exc, self.file_unit(path))

    def draft_file(self, path: str) -> Iterator[dict[str, Any] | beam.pvalue.TaggedOutput]:
        """Draft records and counted dead letters of one file (what the ParDo yields): every
        item :meth:`read_file` gives goes through the source's ``restructure`` hook, and one
        it rejects is a ``restructure``-stage dead letter (counted in namespace
        ``RestructureRecords``, as ``dropped_<reason>``; drafts as ``out``)."""
        for out in self.read_file(path):
            yield out if isinstance(out, beam.pvalue.TaggedOutput) else self.restructure_item(out)

    def restructure_item(self, item: Item) -> dict[str, Any] | beam.pvalue.TaggedOutput:
        """``item``'s draft record (the source's ``restructure``), or its counted dead letter
        (stage ``restructure``)."""
        try:
            draft = self._restructure(item, self.options)
        except EnvironmentFault:  # the machine failed, not this item: stop the run
            raise
        except Exception as exc:  # a bad item is a dead letter, never a crash
            roots = option_roots(self.options)
            # details name files relative to the source's configured paths
            return RestructureRecords.reject_exception(
                self.source,
                item.get("source_id", "?"),
                exc,
                lambda detail: scrub_paths(detail, roots),
            )
        RestructureRecords.count("out")
        return self.name_sources(draft)

    def name_sources(self, draft: Any) -> Any:
        """``draft`` with its ``provenance.source_file`` and each image's ``source_uri``
        named as a release may show them: the address the source publishes for an image
        where the restructure hook gave one (``ImageRefs.add(source_uri=...)``), otherwise
        the file relative to the source's root (:meth:`display`). A draft of the wrong shape
        is left for ``LoadImages`` to reject (``malformed_draft``)."""
        if not isinstance(draft, dict):
            return draft
        prov = draft.get("provenance")
        if isinstance(prov, dict) and isinstance(prov.get("source_file"), str):
            prov["source_file"] = self.display(prov["source_file"])
        for entry in draft.get("images") if isinstance(draft.get("images"), list) else []:
            named = isinstance(entry, dict) and entry.get("source_uri")
            if not named and isinstance(entry, dict) and isinstance(entry.get("uri"), str):
                entry["source_uri"] = self.display(entry["uri"])
        return draft

    def _check_side_file(self, path: str) -> Iterator[beam.pvalue.TaggedOutput]:
        """A side file's element: nothing when it loads, one dead letter when it does not."""
        self.count("side_files")
        try:
            self._side_cache[path] = self.load_side_file(path)
        except Exception as exc:
            self._side_cache[path] = None
            yield self._reject_file(path, exc, self.display(path))

    def _reject_file(self, path: str, exc: Exception, source_id: str) -> beam.pvalue.TaggedOutput:
        """One dead letter for file ``path`` that failed with ``exc``: a RecordError keeps its
        reason (and its ``source_id``, when it names one); anything else is
        ``file_error_reason``."""
        if isinstance(exc, RecordError):
            sid = exc.source_id if exc.source_id is not None else source_id
            return self._reject(exc.reason, sid, exc.detail)
        detail = f"{self.display(path)}: {type(exc).__name__}: {exc}"
        return self._reject(self.file_error_reason, source_id, detail)

    def _reject(self, reason: str, source_id: str, detail: str) -> beam.pvalue.TaggedOutput:
        roots = option_roots(self.options)
        detail = scrub_paths(str(detail), roots)
        source_id = scrub_paths(str(source_id), roots)
        return self.reject(reason, self.source, source_id, detail)

    def expand_stage(self, pbegin: beam.pvalue.PBegin) -> beam.pvalue.DoOutputsTuple:
        name = self.namespace.removeprefix("Read")
        paths = [os.fsencode(f) for f in (*self.files, *self.side)]
        # as bytes (os.fsencode): a file name that is not UTF-8 must reach read_file, to be
        # a dead letter, instead of failing Beam's string coder
        return (
            pbegin
            | f"Create{name}Files" >> beam.Create(paths)
            | f"Parse{name}Files" >> self.par_do(_ReadFileFn(self))
        )

    def __getstate__(self) -> dict[str, Any]:
        """The worker copy (inside the DoFn): no pipeline, no file list."""
        state = dict(self.__dict__)
        state.pop("pipeline", None)
        state["files"] = []
        state["_side_cache"] = {}
        return state


def default_limits() -> dict[str, Any]:
    """The ``limits`` block's schema defaults (for a reader built without a config)."""
    return with_defaults(load_schema("config")["$defs"]["limits"]["properties"], None)


class _ReadFileFn(beam.DoFn):
    """One input file -> its drafts (main output) and read and restructure dead letters
    (``DEAD``)."""

    def __init__(self, reader: SourceReader) -> None:
        self._reader = reader

    def setup(self) -> None:
        self._reader.setup()

    def process(self, path: bytes) -> Iterator[dict[str, Any] | beam.pvalue.TaggedOutput]:
        yield from self._reader.draft_file(os.fsdecode(path))
