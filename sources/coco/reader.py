"""``ReadCOCO``: COCO 2017 captions + instances files -> one item per image (see join.py)."""

from __future__ import annotations

from collections.abc import Iterator

from schemas.errors import RecordError
from schemas.fs import match
from sources.base import SourceReader, Unit
from sources.coco import join


class ReadCOCO(SourceReader):
    """Read COCO 2017 images with their captions and instance annotations.

    Each captions file is one ParDo element; it and its instances file are each loaded once.

    Args:
        options: the ``sources.coco`` config block (``root``, ``split``, optional
            ``captions`` / ``instances`` / ``images`` overrides, ``seed``, component range).

    Input: the pipeline root.
    Items: one per image of the captions file; the main output ``drafts`` holds them
        restructured (``sources.base``), ``DEAD`` the read and restructure dead letters.
    Dead letters: see ``sources/coco/join.py`` and the README (``no_captions``,
        ``unknown_image_id``, ``missing_key``, ``path_escapes_root``, ...); a captions file
        that cannot be read to its end is one ``unexpected_error`` (unit = the file).
    Counters (namespace ``ReadCOCO``): ``files``, ``items``, ``dropped_<reason>``.

    Example:
        ``p | "ReadCOCO" >> ReadCOCO({"root": "/data/coco", "split": "val"})``
    """

    source = join.SOURCE
    namespace = "ReadCOCO"
    file_error_reason = "unexpected_error"  # the loaders report bad files; anything else is a bug

    def list_files(self) -> list[str]:
        return match(join.paths(self.options)["captions"])

    def iter_units(self, path: str) -> Iterator[Unit]:
        instances_file = join.paths(self.options)["instances"]
        limit = self.max_file_bytes
        root = join.file_root(self.options, "captions")
        captions = join.load_json(path, "captions file", max_bytes=limit, root=root)
        instances, instances_error = None, None
        try:
            root = join.file_root(self.options, "instances")
            instances = join.load_json(instances_file, "instances file", max_bytes=limit, root=root)
        except RecordError as exc:
            instances_error = exc
        yield from join.iter_units(
            captions,
            instances,
            options=self.options,
            captions_file=path,
            instances_file=instances_file,
            instances_error=instances_error,
        )
