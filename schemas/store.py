"""The build's content-addressed image store: ``<build>/images/<sha256>.<ext>``.

``LoadImages`` reads, checks and hashes every image once and writes it here; from then on
records carry only the reference (``images[].path``, relative to the build folder) and the
metadata. Stages that need pixels (CLIP scoring), ``mmloom show``, ``publish`` and
``annotate push`` read them back through :class:`ImageStore`.

Writes are idempotent and never leave a partial image under its final name: the bytes go to
a temporary name beside it (``images/.<name>.<token>.partial``) that is then renamed into
place; an image already present is not written again. Two workers writing the same picture
at once each rename a complete copy of identical bytes, so the last rename wins harmlessly.
A build killed mid-write can leave ``*.partial`` files, which :meth:`ImageStore.sweep_partials`
removes; a local build writes into a fresh staging folder, so its partial files go with it.

A write that fails (a full disk, an I/O error, a read-only folder) raises
:class:`schemas.errors.EnvironmentFault`: the build stops, it never drops the record.

Any Beam filesystem works: a local folder, or ``gs://bucket/build`` on Dataflow (where a
rename is a copy then a delete, and an object only becomes visible once fully written).
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import uuid

from schemas.errors import WRITING, environment_faults
from schemas.filesystems import FileSystems

IMAGES_DIR = "images"
PARTIAL_SUFFIX = ".partial"
# what a record's ``images[].path`` may be: exactly one content-addressed file in images/
_REF = re.compile(r"^images/[0-9a-f]{64}\.(jpg|png|gif|webp|bmp|tiff)$")


def is_ref(path: str) -> bool:
    """Is ``path`` a store reference (``images/<sha256>.<ext>``)?"""
    return isinstance(path, str) and _REF.match(path) is not None


def ref_for(sha256: str, ext: str) -> str:
    """The reference of an image: ``images/<sha256>.<ext>``."""
    return f"{IMAGES_DIR}/{sha256}.{ext}"


def write_object(uri: str, data: bytes) -> None:
    """Write ``data`` as the new file ``uri``: the store's one low-level write (tests that
    make the disk fail replace this function)."""
    with FileSystems.create(uri, compression_type="uncompressed") as f:
        f.write(data)


class ImageStore:
    """The image store of one build folder (a local path or any Beam filesystem URI).

    ``ref`` arguments are record paths: ``images/<sha256>.<ext>``. The object is small and
    picklable, so DoFns can carry one and open files in ``process``.
    """

    def __init__(self, build_dir: str) -> None:
        self.build_dir = build_dir

    @property
    def root(self) -> str:
        return FileSystems.join(self.build_dir, IMAGES_DIR)

    def uri(self, ref: str) -> str:
        """Where the image ``ref`` lives."""
        if not is_ref(ref):
            raise ValueError(f"{ref!r} is not an image store reference (images/<sha256>.<ext>)")
        return FileSystems.join(self.build_dir, *ref.split("/"))

    def exists(self, ref: str) -> bool:
        return FileSystems.exists(self.uri(ref))

    def put(self, ref: str, data: bytes) -> bool:
        """Write ``data`` as ``ref`` unless it is already there; True when written now.

        Raises:
            EnvironmentFault: the write failed (a full disk, an I/O error, a read-only or
            unwritable folder): the machine's fault, never the image's, so it stops the
            build instead of dropping the record.
        """
        final = self.uri(ref)
        if FileSystems.exists(final):
            return False
        name = posixpath.basename(ref)
        tmp = FileSystems.join(self.root, f".{name}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")
        with environment_faults(WRITING, ref):
            try:
                if "://" not in final:
                    os.makedirs(os.path.dirname(final), exist_ok=True)
                write_object(tmp, data)
                FileSystems.rename([tmp], [final])
            except BaseException:
                try:
                    if FileSystems.exists(tmp):
                        FileSystems.delete([tmp])
                except Exception:  # the original error matters more than the cleanup's
                    pass
                raise
        return True

    def get(self, ref: str) -> bytes:
        """The bytes of ``ref``.

        Raises:
            FileNotFoundError: the store has no such image (the build is incomplete or was
            damaged; rebuild it).
        """
        uri = self.uri(ref)
        try:
            with FileSystems.open(uri, compression_type="uncompressed") as f:
                return f.read()
        except Exception as exc:
            if not FileSystems.exists(uri):
                raise FileNotFoundError(
                    f"{uri} is missing from the build's image store; rebuild with "
                    "`mmloom build --overwrite`"
                ) from exc
            raise

    def copy_to(self, ref: str, dst: str) -> None:
        """Put the image ``ref`` at the local path ``dst``: a hard link when the store is on
        the same local filesystem, else a streamed copy (never the whole file in memory)."""
        src = self.uri(ref)
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        if "://" not in src:
            try:
                os.link(src, dst)
                return
            except OSError:
                pass
        with FileSystems.open(src, compression_type="uncompressed") as f, open(dst, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)

    def size(self, ref: str) -> int:
        """Size in bytes of the stored image ``ref``."""
        uri = self.uri(ref)
        if "://" not in uri:
            return os.path.getsize(uri)
        return FileSystems.match([uri])[0].metadata_list[0].size_in_bytes

    def partials(self) -> list[str]:
        """Temporary files left by interrupted writes."""
        pattern = FileSystems.join(self.root, f".*{PARTIAL_SUFFIX}")
        try:
            return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
        except Exception:  # no images folder yet
            return []

    def sweep_partials(self) -> int:
        """Delete the temporary files of interrupted writes; returns how many."""
        found = self.partials()
        if found:
            FileSystems.delete(found)
        return len(found)

    def refs(self) -> list[str]:
        """Every stored image, as references, sorted."""
        pattern = FileSystems.join(self.root, "*")
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception:
            return []
        out = [f"{IMAGES_DIR}/{posixpath.basename(m.path)}" for m in matched]
        return sorted(r for r in out if is_ref(r))
