"""Behaviour unchanged: the sample's build and release are byte for byte what
tests/testdata/sample_digests.json says (tools/sample_digest.py explains the two normalised
files). A change meant to change what is written rewrites the digests in the same commit:
`python -m tools.sample_digest --write`."""

from __future__ import annotations

import json

import pytest

from pipelines.cli import main
from tools.sample_digest import DIGESTS, folder_digests

pytestmark = pytest.mark.slow


def test_sample_build_and_release_are_byte_identical_to_the_recorded_digests(
    sample_build, tmp_path
):
    release = tmp_path / "release"
    assert main(["publish", "--build", str(sample_build), "--output", str(release),
                 "--version", "1.0.0"]) == 0  # fmt: skip
    got = {**folder_digests(sample_build, "build"), **folder_digests(release, "release")}
    want = json.loads(DIGESTS.read_text(encoding="utf-8"))
    changed = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
    assert (sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys()), changed) == (
        [],
        [],
        [],
    ), "the sample changed: if that is meant, rerun tools/sample_digest.py --write"
