"""Hub downloads through huggingface_hub, with HF_ENDPOINT pointed at a loopback hub.

huggingface_hub reads HF_ENDPOINT when it is imported, so each fetch runs in a fresh
``python -m pipelines.cli fetch`` process; the code path is the production one.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tests.fetch.conftest import MV_PARQUET, checksums_dir, fetch_env, run_fetch
from tests.fetch.servers import COMMIT


def parquet_bytes(tmp_path) -> bytes:
    table = pa.table({"pid": ["1"], "question": ["q"]})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    return path.read_bytes()


def test_mathvista_parquet_from_the_hub_pinned_and_recorded(tmp_path, serve, published):
    files, hub = serve
    data = parquet_bytes(tmp_path)
    hub.put("AI4Math/MathVista", f"data/{MV_PARQUET}", data)
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)
    env = fetch_env(files, hub, tmp_path)
    result = run_fetch(env, "mathvista", "--to", str(to), "--checksums-dir", str(sums))
    assert result.returncode == 0, result.stderr
    assert (to / f"mathvista/data/{MV_PARQUET}").read_bytes() == data
    recorded = (to / "mathvista/checksums.tsv").read_text()
    pinned = f"hf://datasets/AI4Math/MathVista@{COMMIT}/data/{MV_PARQUET}"
    assert f"{pinned}\t{len(data)}\t{published.sha(data)}\t{MV_PARQUET}" in recorded
    # main was resolved once (HEAD), then the download asked for the commit itself
    resolves = [r.path for r in hub.requests()]
    assert resolves[0] == f"/datasets/AI4Math/MathVista/resolve/main/data/{MV_PARQUET}"
    assert all(f"/resolve/{COMMIT}/" in p for p in resolves[1:]) and resolves[1:]
    assert "parquet: mathvista/data/testmini-*.parquet" in (to / "mmloom.yaml").read_text()

    # later fetches use the recorded commit and find the file verified: no hub call at all
    before = len(hub.requests())
    again = run_fetch(env, "mathvista", "--to", str(to), "--checksums-dir", str(sums))
    assert again.returncode == 0, again.stderr
    assert len(hub.requests()) == before


def test_project_checksums_are_verified_for_hub_files(tmp_path, serve):
    """Without --checksums-dir the committed sources/mathvista/checksums.tsv applies; the
    loopback file is not the real parquet, so it is caught and kept aside."""
    files, hub = serve
    hub.put("AI4Math/MathVista", f"data/{MV_PARQUET}", parquet_bytes(tmp_path))
    to = tmp_path / "data"
    result = run_fetch(fetch_env(files, hub, tmp_path), "mathvista", "--to", str(to))
    assert result.returncode == 2
    assert f"checksum mismatch for {MV_PARQUET}" in result.stderr
    assert "373f6c0b412a9be2cec36711cee724e03f4c5db6908f3c13db903aa9694d4f2d" in result.stderr
    assert list((to / "downloads/mathvista/hub/data/.bad").iterdir())
    assert not (to / "mathvista/data").exists()


def test_missing_revision_is_a_clear_error(tmp_path, serve, published):
    files, hub = serve
    sums = checksums_dir(tmp_path, published)
    gone = "0" * 40
    (sums / "remi/checksums.tsv").write_text(
        f"hf://datasets/mehrankazemi/ReMI@{gone}/test.parquet\t-\t-\ttest.parquet\n"
    )
    to = tmp_path / "data"
    env = fetch_env(files, hub, tmp_path, HF_TOKEN="hf_should_not_leak")
    result = run_fetch(env, "remi", "--to", str(to), "--checksums-dir", str(sums))
    assert result.returncode == 2
    assert "could not fetch test.parquet" in result.stderr
    assert "RevisionNotFoundError" in result.stderr
    assert "update the row in the source's checksums.tsv" in result.stderr
    assert "hf_should_not_leak" not in result.stdout + result.stderr
