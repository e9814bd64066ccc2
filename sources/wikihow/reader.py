"""``ReadWikiHow``: the Beam transform that reads wikiHow (VGSI) into items."""

from __future__ import annotations

from collections.abc import Iterator

from schemas.fs import glob_root
from sources.base import SourceReader, Unit
from sources.wikihow import parse


class ReadWikiHow(SourceReader):
    """Read wikiHow (VGSI) articles into one item per (article, method).

    Args:
        options: the ``sources.wikihow`` config block: ``text`` (path or glob of
            ``WikihowText_data.json``, JSON Lines), ``images`` (folder of ``<step_id>.png``,
            flat or in ``train/`` and ``test/``), ``split`` (default ``"all"``).
    Input: the pipeline root. The step-image folders (images root, ``train/``, ``test/``) are
        listed once per worker.
    Items: dicts with ``source``, ``source_id`` = method id, ``split``, ``source_file``, the
        article fields and the method's steps, each step with ``image_uri`` or ``None``; the
        main output ``drafts`` holds them restructured (``sources.base``), ``DEAD`` the read
        and restructure dead letters.
    Dead letters: ``malformed_json``, ``missing_key``, ``bad_value``, ``no_methods``,
        ``path_escapes_root``, ``unexpected_error`` (see sources/wikihow/README.md);
        ``malformed_file`` (a file that cannot be read to its end; one per file);
        ``not_a_regular_file``, ``file_too_large``, ``path_escapes_root`` (the file itself,
        see ``sources.base``).
    Counters (namespace ``ReadWikiHow``): ``files``, ``items``, ``dropped_<reason>``.

    Example:
        read = p | "ReadWikiHow" >> ReadWikiHow({"text": ".../WikihowText_data.json",
                                                   "images": ".../wiki_images"})
        read.drafts, read[DEAD]
    """

    source = parse.SOURCE
    namespace = "ReadWikiHow"

    def list_files(self) -> list[str]:
        return self.match_option("text")

    def setup(self) -> None:
        self._lookup = parse.image_lookup(self.options["images"])

    def iter_units(self, path: str) -> Iterator[Unit]:
        yield from parse.read_lines(
            self._lines(path),
            path,
            self._lookup,
            split=self.options["split"],
            images_root=self.options["images"],
        )

    def _lines(self, path: str) -> Iterator[bytes]:
        """Stream the raw lines of one file (any Beam filesystem; ``.gz`` is decompressed)."""
        root = glob_root(self.options["text"])
        with self.open_source(path, root, decompress=True) as f:
            while line := f.readline():
                yield line
