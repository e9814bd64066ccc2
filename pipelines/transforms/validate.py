"""ValidateRecords and DropDuplicateIds: the checks just before records are written."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from schemas.deadletter import STAGE_DEDUPE_IDS, STAGE_VALIDATE, origin
from schemas.fs import display_path
from schemas.records import Record, json_view
from schemas.stage import RecordStage, StageFn, StageReason
from schemas.validation import validate_record


class ValidateRecordsFn(StageFn):
    def process_element(self, record: Record) -> Iterator[Record | TaggedOutput]:
        source, source_id = origin(record)
        try:
            issues = validate_record(record)
        except Exception as exc:  # a record too broken to validate is still only a dead letter
            issues = [f"validator failed: {type(exc).__name__}: {exc}"]
        if issues:
            detail = f"id={record.get('id')}; " + "; ".join(str(i) for i in issues[:10])
            yield self.reject(ValidateRecords.Reason.SCHEMA_INVALID, source, source_id, detail)
            return
        self.count("out")
        yield record


class ValidateRecords(RecordStage):
    """Check records against ``schemas/record.schema.json`` and the semantic rules.

    Input: finished ``Record``. Output: main ``valid`` (``Record``); ``DEAD``: ``DeadLetter``
    (stage ``validate``).
    Counters (``ValidateRecords``): ``out``, ``dropped_schema_invalid``.
    """

    stage = STAGE_VALIDATE
    fns = (ValidateRecordsFn,)
    main = "valid"

    class Reason(StageReason):
        SCHEMA_INVALID = (
            "schema_invalid",
            "a finished record breaks `schemas/record.schema.json` or a semantic rule; the "
            "detail lists JSON pointers and messages",
        )

    def expand_stage(self, records: beam.PCollection[Record]) -> beam.pvalue.DoOutputsTuple:
        return records | "ValidateRecordsFn" >> self.par_do(ValidateRecordsFn())


def _tiebreak(record: Record) -> tuple[str, str, str]:
    prov = record["provenance"]
    content = json.dumps(json_view(record), sort_keys=True, ensure_ascii=False)
    # surrogatepass: a lone surrogate from a source's JSON (e.g. "\ud800") is valid here; the
    # Parquet row check later turns it into an ``invalid_utf8`` dead letter
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
    return prov["source_file"], prov["source_id"], digest


class PickOneFn(StageFn):
    def process_element(
        self, keyed: tuple[str, Iterable[Record]]
    ) -> Iterator[Record | TaggedOutput]:
        record_id, records = keyed
        ordered = sorted(records, key=_tiebreak)
        self.count("out")
        yield ordered[0]
        kept = ordered[0]["provenance"]
        for dup in ordered[1:]:
            prov = dup["provenance"]
            yield self.reject(
                DropDuplicateIds.Reason.DUPLICATE_ID,
                prov["source"],
                prov["source_id"],
                # the kept unit's file by name only: no machine path in a dead letter
                f"id {record_id} already taken by {kept['source']} {kept['source_id']} "
                f"from {display_path(kept['source_file'], None)}",
            )

    def origin_of(self, keyed: tuple[str, Iterable[Record]]) -> tuple[str, str]:
        first = next(iter(keyed[1]), None)
        return origin(first) if first is not None else ("unknown", str(keyed[0]))


class DropDuplicateIds(RecordStage):
    """Keep one record per id (deterministically), dead-letter the rest as ``duplicate_id``.

    Ids come from source coordinates, so a repeat means the same source unit was read twice
    (e.g. a file listed twice by a glob). The kept record is the smallest by (source file,
    source id, content hash), so reruns keep the same one.

    Input: ``Record``. Output: main ``unique`` (``Record``); ``DEAD``: ``DeadLetter`` (stage
    ``dedupe_ids``).
    Counters (``DropDuplicateIds``): ``out``, ``dropped_duplicate_id``.
    """

    stage = STAGE_DEDUPE_IDS
    fns = (PickOneFn,)
    main = "unique"

    class Reason(StageReason):
        DUPLICATE_ID = (
            "duplicate_id",
            "a second record with the same id (the same source unit read twice); the detail "
            "names the kept one",
        )

    def expand_stage(self, records: beam.PCollection[Record]) -> beam.pvalue.DoOutputsTuple:
        return (
            records
            | "KeyById" >> beam.Map(lambda r: (r["id"], r))
            | "GroupById" >> beam.GroupByKey()
            | "PickOne" >> self.par_do(PickOneFn())
        )
