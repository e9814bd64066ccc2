"""Hugging Face Hub downloads through ``huggingface_hub`` (no hand-written client).

A hub file is named in a checksums file as ``hf://datasets/<repo_id>@<revision>/<path>``.
When the revision is a branch (``main``), the commit it points at is resolved first and the
download is pinned to that commit; the commit is recorded with the checksum so every later
fetch downloads exactly the same revision. ``HF_ENDPOINT`` is honoured (huggingface_hub
reads it when imported), and the token comes only from ``HF_TOKEN`` in the environment; it
is never logged.

The bytes are bounded as for plain HTTP (:class:`~pipelines.fetch.http.SizeBound`): the
download's progress callback, which ``huggingface_hub`` calls with each chunk before writing
it, counts what arrives and stops the download when it would pass the bound (and checks free
space as it goes when the size is unknown); ``huggingface_hub`` then deletes its temporary
file. Should a later ``huggingface_hub`` write a chunk before reporting it, at most that one
chunk (10 MB) more is written, and the size is verified after the download in any case.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.fetch.http import SizeBound
from pipelines.fetch.limits import DiskWatch
from schemas.errors import MmloomError

_HF_URL = re.compile(r"^hf://(datasets|models|spaces)/([^@]+?/[^@/]+)@([^/]+)/(.+)$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class HubFile:
    repo_type: str  # "dataset"
    repo_id: str
    revision: str
    path: str

    @property
    def url(self) -> str:
        return f"hf://{self.repo_type}s/{self.repo_id}@{self.revision}/{self.path}"

    def pinned(self) -> bool:
        return bool(_COMMIT.match(self.revision))


def parse_hf_url(url: str) -> HubFile:
    m = _HF_URL.match(url)
    if not m:
        raise MmloomError(
            f"{url!r} is not a hub file URL; expected hf://datasets/<owner>/<name>@<revision>/<path>"
        )
    kind, repo_id, revision, path = m.groups()
    return HubFile(kind[:-1], repo_id, revision, path)


def _token() -> str | bool:
    # only the environment; False stops huggingface_hub from reading a stored login
    return os.environ.get("HF_TOKEN") or False


def _explain(exc: Exception, hub: HubFile) -> MmloomError:
    from huggingface_hub import constants

    name = type(exc).__name__
    hint = (
        "If the dataset is gated, accept its terms on the hub and export HF_TOKEN; "
        "check HF_ENDPOINT if you use a mirror"
    )
    if name in ("GatedRepoError", "RepositoryNotFoundError"):
        hint = "accept the dataset's terms on the hub if it is gated, and export HF_TOKEN"
    elif name in ("RevisionNotFoundError", "EntryNotFoundError", "RemoteEntryNotFoundError"):
        hint = "the pinned revision or file is gone; update the row in the source's checksums.tsv"
    elif name in ("ConnectError", "ConnectionError", "ConnectTimeout"):
        hint = (
            "the hub could not be reached (its host name does not resolve, or it refused the "
            "connection): check your network connection, DNS and HF_ENDPOINT"
        )
    return MmloomError(
        f"could not fetch {hub.path} from {constants.ENDPOINT} ({hub.repo_type} {hub.repo_id} "
        f"@ {hub.revision}): {name}: {str(exc).splitlines()[0] if str(exc) else ''}. {hint}; "
        "then run the same command again (downloads resume)"
    )


def resolve(hub: HubFile) -> tuple[HubFile, int | None]:
    """Pin ``hub`` to a commit (a HEAD request); returns it and the file's size if given."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(hub.repo_id, hub.path, repo_type=hub.repo_type, revision=hub.revision)
    try:
        meta = get_hf_file_metadata(url, token=_token())
    except Exception as exc:  # reported with a hint, not swallowed
        raise _explain(exc, hub) from None
    if not meta.commit_hash:
        raise MmloomError(f"{url} answered without a commit; is HF_ENDPOINT a hub?")
    return HubFile(hub.repo_type, hub.repo_id, meta.commit_hash, hub.path), meta.size


def _bounded_bar(bound: SizeBound, label: str, url: str, folder: Path) -> type:
    """A ``huggingface_hub`` progress bar class that stops the download past ``bound``."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class BoundedBar(hf_tqdm):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.received = int(kwargs.get("initial") or 0)
            self.watch = None if bound.known else DiskWatch(folder, label)

        def update(self, n: float | None = 1) -> bool | None:
            self.received += int(n or 0)
            if self.received > bound.limit:
                raise bound.refusal(label, url)
            if self.watch is not None:
                self.watch.wrote(int(n or 0))
            return super().update(n)

    return BoundedBar


def download(hub: HubFile, local_dir: Path, bound: SizeBound, label: str) -> Path:
    """``hf_hub_download`` of a pinned file into ``local_dir``/<path> (never past ``bound``)."""
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(
            repo_id=hub.repo_id,
            filename=hub.path,
            repo_type=hub.repo_type,
            revision=hub.revision,
            local_dir=str(local_dir),
            token=_token(),
            tqdm_class=_bounded_bar(bound, label, hub.url, local_dir),
        )
    except MmloomError:
        raise
    except Exception as exc:
        raise _explain(exc, hub) from None
    return Path(path)
