"""``ReadVIST``: the Beam reader for VIST SIS stories (parsing lives in ``parse.py``)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from schemas.deadletter import DEAD, STAGE_READ, dead_letter
from schemas.errors import RecordError
from schemas.fs import join, list_dir_stems, match, read_bytes
from schemas.metrics import inc
from sources.base import Item
from sources.vist import parse

NAMESPACE = "ReadVIST"


def _files(pattern: str | None) -> list[str]:
    """Files for a path or glob option (empty when unset)."""
    return match(pattern) if pattern else []


class ParseVISTFileFn(beam.DoFn):
    """Parse one SIS file into story items and read-stage dead letters.

    The images folder of each split is listed once per worker (cached), and the DII captions
    of a split are loaded once per worker when DII files are configured.
    """

    def __init__(self, options: dict[str, Any], dii_files: dict[str, list[str]]) -> None:
        self._options = options
        self._dii_files = dii_files

    def setup(self) -> None:
        self._stems: dict[str, dict[str, str]] = {}
        self._dii: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def _image_stems(self, split: str) -> dict[str, str]:
        if split not in self._stems:
            folder = join(self._options["images"], split)
            try:
                self._stems[split] = list_dir_stems(folder)
            except Exception:  # a missing split folder: every photo is then image_missing
                self._stems[split] = {}
        return self._stems[split]

    def _dii_for(self, split: str) -> dict[str, list[dict[str, Any]]] | None:
        """Captions by photo id for ``split``; None when no DII is configured at all."""
        if not self._options.get("dii"):
            return None
        if split not in self._dii:
            captions: dict[str, list[dict[str, Any]]] = {}
            for path in self._dii_files.get(split, []):
                try:
                    doc = parse.load_container(read_bytes(path), path, kind="DII")
                    by_photo = parse.parse_dii(doc, path)
                except RecordError as exc:
                    raise RecordError("malformed_dii_file", exc.detail) from exc
                except Exception as exc:
                    raise RecordError(
                        "malformed_dii_file", f"{path}: {type(exc).__name__}: {exc}"
                    ) from exc
                for photo, caps in by_photo.items():
                    captions.setdefault(photo, []).extend(caps)
            self._dii[split] = captions
        return self._dii[split]

    def _dead(self, reason: str, unit_id: str, detail: str) -> beam.pvalue.TaggedOutput:
        inc(NAMESPACE, f"dropped_{reason}")
        return beam.pvalue.TaggedOutput(
            DEAD, dead_letter(STAGE_READ, reason, parse.SOURCE, unit_id, detail)
        )

    def process(self, path: str) -> Iterator[Item | beam.pvalue.TaggedOutput]:
        file_unit = posixpath.basename(path)
        try:
            split = parse.split_of(path)
            doc = parse.load_container(read_bytes(path), path)
            dii = self._dii_for(split)
            image_stems = self._image_stems(split)
        except RecordError as exc:
            yield self._dead(exc.reason, file_unit, exc.detail)
            return
        except Exception as exc:  # unreadable file: one dead letter for the whole file
            yield self._dead("malformed_file", file_unit, f"{path}: {type(exc).__name__}: {exc}")
            return
        units = parse.iter_sis_units(
            doc,
            split=split,
            source_file=path,
            images_root=self._options["images"],
            image_stems=image_stems,
            text_field=self._options.get("text_field", parse.DEFAULT_TEXT_FIELD),
            dii=dii,
        )
        for unit_id, result in units:
            if isinstance(result, RecordError):
                yield self._dead(result.reason, unit_id, result.detail)
                continue
            inc(NAMESPACE, "items")
            if not all(s["image_found"] for s in result["storylets"]):
                inc(NAMESPACE, "stories_with_missing_photos")
            yield result


class ReadVIST(beam.PTransform):
    """Read VIST SIS stories as items, one per story.

    Args:
        options: the ``sources.vist`` config block: ``sis`` (path or glob of
            ``<split>.story-in-sequence.json``), ``images`` (folder of
            ``<split>/<photo_flickr_id>.<ext>``), optional ``dii`` (path or glob of
            ``<split>.description-in-isolation.json``), ``text_field``.

    Input: the pipeline root. The SIS (and DII) files are listed when the transform is built.

    Output: a ``DoOutputsTuple``: main ``"items"`` (story dicts: ``source``, ``source_id`` =
    story_id, ``split``, ``source_file``, ``album_id``, ``album``, ``storylets`` sorted by
    ``worker_arranged_photo_order`` with ``image_uri``/``image_found``, ``dii``) and ``DEAD``.

    Dead letters (stage ``read``): ``malformed_file`` (unit = the SIS file),
    ``malformed_dii_file`` (unit = the SIS file whose split's DII file is broken),
    ``malformed_annotation``, ``missing_key``, ``malformed_story``, ``path_escapes_root``,
    ``unexpected_error`` (a bug, per story).

    Counters (namespace ``ReadVIST``): ``items``, ``dropped_<reason>``,
    ``stories_with_missing_photos``.

    Example:
        ``outputs = p | "ReadVIST" >> ReadVIST({"sis": ".../test.story-in-sequence.json",
        "images": ".../images"})``; ``outputs.items``, ``outputs[DEAD]``.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__()
        self._options = dict(options)
        self._files = _files(options.get("sis"))
        dii_files: dict[str, list[str]] = {}
        for path in _files(options.get("dii")):
            dii_files.setdefault(posixpath.basename(path).split(".", 1)[0], []).append(path)
        self._dii_files = dii_files

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.pvalue.DoOutputsTuple:
        fn = ParseVISTFileFn(self._options, self._dii_files)
        files = pbegin | "CreateVISTFiles" >> beam.Create(self._files)
        return files | "ParseVISTFiles" >> beam.ParDo(fn).with_outputs(DEAD, main="items")
