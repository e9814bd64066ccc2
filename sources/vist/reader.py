"""``ReadVIST``: the Beam reader for VIST SIS stories (parsing lives in ``parse.py``)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from schemas.errors import RecordError
from schemas.fs import glob_root, join, list_dir_stems, match
from sources.base import SourceReader, Unit
from sources.vist import parse


class ReadVIST(SourceReader):
    """Read VIST SIS stories as items, one per story.

    Args:
        options: the ``sources.vist`` config block: ``sis`` (path or glob of
            ``<split>.story-in-sequence.json``), ``images`` (folder of
            ``<split>/<photo_flickr_id>.<ext>``), optional ``dii`` (path or glob of
            ``<split>.description-in-isolation.json``), ``text_field``.

    Input: the pipeline root. The SIS (and DII) files are listed when the transform is built.
    The images folder of each split is listed once per worker (cached), and the DII captions
    of a split are loaded once per worker when DII files are configured. Each DII file is also
    its own input element (``side_files``): a broken one is one ``malformed_dii_file`` dead
    letter, and the stories go on without its captions.

    Items: story dicts (``source``, ``source_id`` = story_id, ``split``, ``source_file``,
    ``album_id``, ``album``, ``storylets`` sorted by ``worker_arranged_photo_order`` with
    ``image_uri``/``image_found``, ``dii``); the main output ``drafts`` holds them
    restructured (``sources.base``), ``DEAD`` the read and restructure dead letters.

    Dead letters (stage ``read``): ``malformed_file`` (unit = the SIS file),
    ``malformed_dii_file`` (unit = the broken DII file, named relative to its folder),
    ``malformed_annotation``, ``missing_key``, ``malformed_story``, ``path_escapes_root``,
    ``unexpected_error`` (a bug, per story); ``not_a_regular_file``, ``file_too_large``,
    ``path_escapes_root`` (the SIS file itself, see ``sources.base``).

    Counters (namespace ``ReadVIST``): ``files``, ``items``, ``dropped_<reason>``,
    ``stories_with_missing_photos``.

    Example:
        ``outputs = p | "ReadVIST" >> ReadVIST({"sis": ".../test.story-in-sequence.json",
        "images": ".../images"})``; ``outputs.drafts``, ``outputs[DEAD]``.
    """

    source = parse.SOURCE
    namespace = "ReadVIST"

    def list_files(self) -> list[str]:
        dii_files: dict[str, list[str]] = {}
        for path in _files(self.options.get("dii")):
            dii_files.setdefault(posixpath.basename(path).split(".", 1)[0], []).append(path)
        self._dii_files = dii_files
        return _files(self.options.get("sis"))

    def setup(self) -> None:
        self._stems: dict[str, dict[str, str]] = {}
        self._dii: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def file_unit(self, path: str) -> str:
        return posixpath.basename(path)

    def iter_units(self, path: str) -> Iterator[Unit]:
        split = parse.split_of(path)
        doc = parse.load_container(self.read_source(path, glob_root(self.options["sis"])), path)
        units = parse.iter_sis_units(
            doc,
            split=split,
            source_file=path,
            images_root=self.options["images"],
            image_stems=self._image_stems(split),
            text_field=self.options["text_field"],
            dii=self._dii_for(split),
        )
        for unit in units:
            if not isinstance(unit, RecordError) and not all(
                s["image_found"] for s in unit["storylets"]
            ):
                self.count("stories_with_missing_photos")
            yield unit

    def _image_stems(self, split: str) -> dict[str, str]:
        if split not in self._stems:
            folder = join(self.options["images"], split)
            try:
                self._stems[split] = list_dir_stems(folder)
            except Exception:  # a missing split folder: every photo is then image_missing
                self._stems[split] = {}
        return self._stems[split]

    def _dii_for(self, split: str) -> dict[str, list[dict[str, Any]]] | None:
        """Captions by photo id for ``split``; None when no DII is configured at all."""
        if not self.options.get("dii"):
            return None
        if split not in self._dii:
            captions: dict[str, list[dict[str, Any]]] = {}
            for path in self._dii_files.get(split, []):
                # a broken DII file is its own dead letter (side_files): go on without it
                for photo, caps in (self.side_file(path) or {}).items():
                    captions.setdefault(photo, []).extend(caps)
            self._dii[split] = captions
        return self._dii[split]

    def side_files(self) -> list[str]:
        """The DII files (optional captions): each its own unit, one dead letter if broken."""
        return sorted(p for paths in self._dii_files.values() for p in paths)

    def load_side_file(self, path: str) -> dict[str, list[dict[str, Any]]]:
        """One DII file's captions by photo id.

        Raises:
            RecordError(malformed_dii_file): the file cannot be read or parsed.
        """
        name = self.display(path)
        try:
            data = self.read_source(path, glob_root(self.options["dii"]))
            doc = parse.load_container(data, name, kind="DII")
            return parse.parse_dii(doc, name)
        except RecordError as exc:
            raise RecordError("malformed_dii_file", exc.detail) from exc
        except Exception as exc:
            raise RecordError("malformed_dii_file", f"{name}: {type(exc).__name__}: {exc}") from exc


def _files(pattern: str | None) -> list[str]:
    """Files for a path or glob option (empty when unset)."""
    return match(pattern) if pattern else []
