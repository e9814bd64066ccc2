"""The ``audit`` config block: defaults, bounds, and flag codes that exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.audit.patterns import CODES
from pipelines.config import parse_config
from schemas import load_schema
from schemas.errors import PipelineConfigError

REPO = Path(__file__).resolve().parents[2]
BASE = "version: 1\nsources:\n  mathvista:\n    root: {root}\n"


def _config(tmp_path, extra: str = ""):
    text = BASE.format(root=REPO / "sample" / "mathvista") + extra
    return parse_config(text, str(tmp_path / "c.yaml"), no_clip=True)


def test_defaults_audit_and_drop_nothing(tmp_path):
    audit = _config(tmp_path).audit
    assert audit.enabled and audit.drop_flags == () and audit.alpha == 0.01


def test_the_block_is_read(tmp_path):
    extra = "audit:\n  min_cell_items: 50\n  drop_flags: [answer_in_question]\n"
    audit = _config(tmp_path, extra).audit
    assert audit.min_cell_items == 50 and audit.drop_flags == ("answer_in_question",)


@pytest.mark.parametrize(
    "extra",
    [
        "audit:\n  alpha: 0.9\n",
        "audit:\n  min_cell_items: 1\n",
        "audit:\n  drop_flags: [no_such_flag]\n",
        "audit:\n  unknown_key: 1\n",
    ],
)
def test_bad_values_are_refused_with_one_message(tmp_path, extra):
    with pytest.raises(PipelineConfigError, match=r"config\.schema\.json"):
        _config(tmp_path, extra)


def test_the_schema_lists_every_flag_code():
    codes = load_schema("config")["$defs"]["audit"]["properties"]["drop_flags"]["items"]["enum"]
    assert tuple(codes) == CODES
