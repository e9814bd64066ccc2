"""The Dataflow path is built (not submitted) in every test run, so it cannot rot unnoticed.

Beam's DataflowRunner with ``--dry_run=True`` translates the whole pipeline, builds and stages
the package description from setup.py (an sdist, offline) and returns without contacting
Google Cloud. Project and bucket names only need to be syntactically valid.
"""

from __future__ import annotations

import pytest

from pipelines import build
from tests.conftest import REPO, SAMPLE_CONFIG


@pytest.mark.slow
@pytest.mark.usefixtures("tiny_clip_checkpoint")
def test_dataflow_dry_run_translates_the_sample_build(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    result = build.run(
        [
            "--config", str(SAMPLE_CONFIG),
            "--output", "gs://mmloom-test-bucket/builds/sample",
            "--runner", "DataflowRunner",
            "--project", "mmloom-test",
            "--region", "us-central1",
            "--temp_location", "gs://mmloom-test-bucket/tmp",
            "--setup_file", "./setup.py",
            "--dry_run=True",
        ]
    )  # fmt: skip
    transforms = result.job.proto_pipeline.components.transforms
    labels = {t.unique_name.split("/")[0] for t in transforms.values()}
    for label in ("ReadVIST", "ReadWikiHow", "ReadMathVista", "ReadReMI", "ReadCOCO",
                  "LoadImages", "ValidateRecords", "DropDuplicateIds",
                  "WriteRecords", "WriteDeadLetters", "ComputeStats"):  # fmt: skip
        assert label in labels, label
    # each reader restructures its items (no separate stage); parquet drafts load their
    # images beside it
    assert not any(label.startswith("RestructureRecords") for label in labels)
    for source in ("VIST", "WikiHow", "MathVista", "ReMI", "COCO"):
        assert f"LoadEmbeddedImages{source}" in labels, source
    # the package built from setup.py travels with the job as a staged dependency
    envs = result.job.proto_pipeline.components.environments.values()
    staged = [d.role_payload for env in envs for d in env.dependencies]
    assert any(b"workflow.tar.gz" in payload for payload in staged), staged
