"""One record shape: the build's Parquet schema, the release's ``datasets`` features and the
record TypedDicts all follow ``record.schema.json`` (``schemas.shape``)."""

from __future__ import annotations

import copy
import typing

import pyarrow as pa
import pytest
from datasets import Features, Image

from pipelines.publish import shards
from schemas import load_schema, records
from schemas.parquet import RECORD_SCHEMA
from schemas.shape import arrow_schema, arrow_type, record_shape

SCHEMA = load_schema("record")
PROPS = list(SCHEMA["properties"])


def _keys(typed: type) -> list[str]:
    return list(typing.get_type_hints(typed))


def test_build_columns_are_the_schema_properties_in_order():
    assert RECORD_SCHEMA.names == PROPS
    assert all(f.nullable for f in RECORD_SCHEMA)
    assert RECORD_SCHEMA.metadata is None


def test_build_stores_nested_objects_as_json_or_structs_from_the_schema():
    image = RECORD_SCHEMA.field("images").type.value_type
    assert [f.name for f in image] == SCHEMA["$defs"]["image"]["required"]
    assert image.field("width").type == pa.int32()
    provenance = RECORD_SCHEMA.field("provenance").type
    assert [f.name for f in provenance] == list(SCHEMA["properties"]["provenance"]["properties"])
    for name in ("answer_value", "instruction", "source_metadata", "scores"):
        assert RECORD_SCHEMA.field(name).type == pa.string(), name
    assert RECORD_SCHEMA.field("precision").type == pa.int64()


def test_record_typeddicts_name_the_schema_keys():
    assert sorted(_keys(records.Record)) == sorted(PROPS)
    assert sorted(_keys(records.DraftRecord)) == sorted(PROPS)
    defs = SCHEMA["$defs"]
    assert _keys(records.RecordImage) == list(defs["image"]["properties"])
    assert _keys(records.Provenance) == list(SCHEMA["properties"]["provenance"]["properties"])
    assert _keys(records.Segment) == list(defs["segment"]["properties"])


def test_release_row_is_the_record_shape_plus_declared_extensions():
    release = shards.FEATURES.arrow_schema
    expected = [p for p in PROPS if p not in shards.DROPPED]
    at = expected.index(shards.COUNTS_AFTER) + 1
    expected[at:at] = list(shards.COUNTS)
    expected += list(shards.ANNOTATION)
    assert release.names == expected
    # every column the build stores structurally is stored alike in the release, except for
    # the declared differences (embedded images, the clip column order)
    for name in RECORD_SCHEMA.names:
        if name in shards.DROPPED or RECORD_SCHEMA.field(name).type == pa.string():
            continue
        build_type = RECORD_SCHEMA.field(name).type
        if name in shards.IMAGE_SEGMENTS:
            segment = release.field(name).type.value_type
            assert segment.field("text").type == pa.string()
            assert segment.field("image").type == arrow_type("image")
            continue
        assert release.field(name).type == build_type, name
    clip = release.field("scores").type.field("clip").type
    assert [f.name for f in clip] == list(shards.ORDER["scores.clip"])
    assert sorted(shards.ORDER["scores.clip"]) == sorted(
        SCHEMA["$defs"]["clip_scores"]["properties"]
    )
    assert (
        release.field("instruction").type.field("components").type.value_type.field("facts").type
        == pa.string()
    )


def test_release_features_round_trip_through_their_json():
    """What ``datasets`` reads back from the Parquet metadata is the same features."""
    again = Features.from_dict(shards.FEATURES.to_dict())
    assert again == shards.FEATURES
    assert isinstance(shards.FEATURES["question"].feature["image"], Image)


def test_a_new_schema_property_reaches_build_and_release():
    """Derived, not copied: a property added to the JSON Schema is a column of both."""
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["difficulty"] = {"type": ["integer", "null"]}
    schema["$defs"]["image"]["properties"]["dpi"] = {"type": "number"}
    build = arrow_schema(record_shape(schema=schema))
    assert build.names[-1] == "difficulty"
    assert build.field("difficulty").type == pa.int64()
    assert build.field("images").type.value_type.field("dpi").type == pa.float64()
    release = shards.release_shape(schema)
    assert list(release)[-2:] == ["difficulty", "annotation"]
    assert release["images"][1]["dpi"] == "float64"


def test_untyped_values_are_json_text():
    schema = {
        "type": "object",
        "properties": {
            "free": {"type": "object"},
            "mixed": {"type": ["string", "number"]},
            "maybe": {"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}}]},
            "label": {"enum": ["a", "b", None]},
        },
    }
    assert record_shape(schema=schema) == {
        "free": "json",
        "mixed": "json",
        "maybe": ("list", "string"),
        "label": "string",
    }


def test_an_order_must_name_every_field():
    with pytest.raises(ValueError, match="must name exactly"):
        record_shape(order={"scores.clip": ("scored", "model")})
