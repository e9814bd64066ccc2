"""The contract every source reader follows (file helpers: ``schemas.fs``).

A source is a folder ``sources/<name>/`` with:

* ``parse.py``: pure functions. ``restructure(item, options) -> draft record`` turns one
  *item* (one unit read from the source) into a draft record (``schemas.records``), or
  raises ``RecordError(reason, detail)``.
* ``reader.py``: ``Read<Source>(options)``, a thin :class:`SourceReader` subclass that
  supplies two hooks, ``list_files()`` (the input files, listed when the transform is built)
  and ``iter_units(path)`` (the units of one file). The base class owns everything else:
  the files → ParDo → ``DEAD`` plumbing, the counters and the dead letters. Its output is a
  ``DoOutputsTuple`` with a main output ``items`` and a ``DEAD`` output of read-stage dead
  letters. Every unit the reader sees ends up in exactly one of the two; the build counts
  both as ``read``.
* ``fields.yaml`` (mapping table into ``schemas/taxonomy.yaml``), ``README.md`` (provenance,
  licence, citation, the tables), ``CITATION.bib``.

The one rejection protocol: ``iter_units`` yields, for every unit of the file, either the
unit's *item* or a ``RecordError`` whose ``source_id`` names the unit
(``as_record_error(exc, source_id)`` turns any exception on a unit into one). An exception
escaping ``iter_units`` ends the file and is one dead letter for the file: a RecordError keeps
its reason, anything else is ``file_error_reason`` (``malformed_file`` unless the reader says
otherwise). Parse-level generators in ``parse.py`` follow the same protocol.

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

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import apache_beam as beam

from schemas import load_schema, source_options, with_defaults
from schemas.deadletter import DEAD, STAGE_READ, reject
from schemas.errors import PipelineConfigError, RecordError
from schemas.fs import match, open_bounded, read_bytes
from schemas.metrics import inc

Item = dict[str, Any]
Unit = Item | RecordError  # what ``iter_units`` yields


@dataclass(frozen=True)
class Source:
    """A registered source: its name, reader transform, restructure function, and checks."""

    name: str
    reader: Callable[[dict[str, Any]], beam.PTransform]
    restructure: Callable[[Item, dict[str, Any]], dict[str, Any]]
    check_options: Callable[[dict[str, Any]], None]


class SourceReader(beam.PTransform):
    """Base of every ``Read<Source>``: input files -> items + read-stage dead letters.

    Subclasses set ``source`` (the registry name) and ``namespace`` (the counter namespace,
    the class name), and implement :meth:`list_files` and :meth:`iter_units`; optionally
    :meth:`setup` (per-worker state, e.g. a listed images folder), :meth:`file_unit` (the
    dead-letter id of a whole file) and ``file_error_reason``.

    Args:
        options: the source's config block (paths resolved).
        max_file_bytes: the read cap on one input file (the build config's
            ``limits.max_file_bytes``); None: the schema's default.

    Input: the pipeline root. The files are listed when the transform is built; none is a
    ``PipelineConfigError``.

    Output: a ``DoOutputsTuple``: main ``items``; ``DEAD``: read-stage dead letters.

    Counters (namespace ``namespace``): ``files``, ``items``, ``dropped_<reason>``.
    """

    source: ClassVar[str]
    namespace: ClassVar[str]
    file_error_reason: ClassVar[str] = "malformed_file"

    def __init__(self, options: dict[str, Any], max_file_bytes: int | None = None) -> None:
        super().__init__()
        self.options = source_options(self.source, options)  # schema defaults, filled once
        self.max_file_bytes = max_file_bytes or default_limits()["max_file_bytes"]
        self.files = self.list_files()
        if not self.files:
            raise PipelineConfigError(
                f"sources.{self.source}: no input file found; check its paths in the config"
            )

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
        return path

    # --- helpers for the hooks ------------------------------------------------------------

    def match_option(self, key: str) -> list[str]:
        """Files matching the path or glob ``options[key]``; none is a PipelineConfigError."""
        pattern = self.options[key]
        files = match(pattern)
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

    # --- the plumbing ---------------------------------------------------------------------

    def read_file(self, path: str) -> Iterator[Item | beam.pvalue.TaggedOutput]:
        """Items and counted dead letters of one file (what the ParDo yields)."""
        inc(self.namespace, "files")
        try:
            for unit in self.iter_units(path):
                if isinstance(unit, RecordError):
                    sid = unit.source_id if unit.source_id is not None else self.file_unit(path)
                    yield self._reject(unit.reason, sid, unit.detail)
                else:
                    inc(self.namespace, "items")
                    yield unit
        except RecordError as exc:  # the file itself is the unit
            sid = exc.source_id if exc.source_id is not None else self.file_unit(path)
            yield self._reject(exc.reason, sid, exc.detail)
        except Exception as exc:  # never a crash: one dead letter for the file
            detail = f"{path}: {type(exc).__name__}: {exc}"
            yield self._reject(self.file_error_reason, self.file_unit(path), detail)

    def _reject(self, reason: str, source_id: str, detail: str) -> beam.pvalue.TaggedOutput:
        return reject(self.namespace, STAGE_READ, reason, self.source, source_id, detail)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.pvalue.DoOutputsTuple:
        name = self.namespace.removeprefix("Read")
        return (
            pbegin
            | f"Create{name}Files" >> beam.Create(self.files)
            | f"Parse{name}Files" >> beam.ParDo(_ReadFileFn(self)).with_outputs(DEAD, main="items")
        )

    def __getstate__(self) -> dict[str, Any]:
        """The worker copy (inside the DoFn): no pipeline, no file list."""
        state = dict(self.__dict__)
        state.pop("pipeline", None)
        state["files"] = []
        return state


def default_limits() -> dict[str, Any]:
    """The ``limits`` block's schema defaults (for a reader built without a config)."""
    return with_defaults(load_schema("config")["$defs"]["limits"]["properties"], None)


class _ReadFileFn(beam.DoFn):
    """One input file -> its items (main output) and read dead letters (``DEAD``)."""

    def __init__(self, reader: SourceReader) -> None:
        self._reader = reader

    def setup(self) -> None:
        self._reader.setup()

    def process(self, path: str) -> Iterator[Item | beam.pvalue.TaggedOutput]:
        yield from self._reader.read_file(path)
