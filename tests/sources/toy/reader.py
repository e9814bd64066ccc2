"""``ReadToy``: one item per line of ``toy.jsonl``."""

from __future__ import annotations

import os
from collections.abc import Iterator

from schemas.errors import RecordError
from sources.base import SourceReader, Unit
from tests.sources.toy import parse


class ReadToy(SourceReader):
    """Read ``toy.jsonl`` into one item per problem (then drafts, by the base class).

    Dead letters (stage ``read``): ``malformed_json``, ``missing_key`` (one per line).
    Counters (namespace ``ReadToy``): ``files``, ``items``, ``dropped_<reason>``.
    """

    source = parse.SOURCE
    namespace = "ReadToy"

    def list_files(self) -> list[str]:
        return self.match_option("data")

    def iter_units(self, path: str) -> Iterator[Unit]:
        text = self.read_source_text(path, None)
        shown = self.display(path)
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                problem = parse.parse_line(line, f"{shown}:{n}")
            except RecordError as exc:
                exc.source_id = f"{shown}:{n}"
                yield exc
                continue
            yield {
                "source": self.source,
                "source_id": problem["id"],
                "split": "test",
                "source_file": path,
                "question": problem["question"],
                "answer": problem["answer"],
                "image": problem["image"],
                "image_uri": os.path.join(self.options["images"], problem["image"]),
                "image_root": self.options["images"],
            }
