"""``mmloom publish``: turn a build (and, optionally, annotation decisions) into a release.

    mmloom publish --build out/sample --output out/release --version 0.1.0 \
        [--annotations out/annotations] [--require-annotation] [--targets targets.yaml] \
        [--seed 0] [--force] [--max-shard-mb 500] [--push-to-hub OWNER/NAME]

Inputs
------
* ``--build DIR``: the ``--output`` folder of ``mmloom build``: ``records/*.parquet`` (read with
  :func:`schemas.buildio.read_records`), ``stats.json`` and ``dead_letters/``.
* ``--annotations DIR`` (optional; written by ``mmloom annotate pull``, issue 6). The contract:

  ``<DIR>/decisions.jsonl``
      one JSON object per line, one line per annotated record::

          {"id": "PBL_wikihow_1_0",            # an mmloom record id
           "verdict": "accept" | "fix" | "reject",
           "corrections": {"field": "Health", "subfield": "Fitness",   # every key optional
                           "answer": "the whole reference answer", "weights": [6, 2, 2]},
           "corrected_by": {"subfield": ["ann-0123456789ab", ...]},   # optional
           "veto": {"question": "harmful", "labels": ["harmful"], "by": [...]},  # optional
           "mean_score": 4.5 | null,           # mean of the annotators' 0-6 ratings
           "n_responses": 2,                   # submitted responses behind the decision
           "comments": [{"annotator": "alice", "text": "..."}],   # optional
           "needs_edit": ["fix_without_correction"],              # optional, see below
           "audit": {"flags": [{"code": "longest_option",         # optional: annotators'
                                "outcome": "confirmed"}]}}        # review of audit flags

      A ``veto`` removes the record whatever the verdict (reason ``harmful_veto``); ``reject``
      removes it; ``fix`` and ``accept`` apply ``corrections`` (if any: an answer text goes
      into ``answer``/``gt_answer`` and ``answer_value``, weights into the IF
      sub-instructions, see :mod:`annotation.corrections`) and the record is validated again
      with :func:`schemas.validation.validate_record`; a correction that does not fit is
      ``correction_invalid``. The row's ``annotation.edits`` keeps each applied correction
      with its value before and after and ``corrected_by``. ``audit`` (what the annotators
      made of the record's validity-audit flags: ``confirmed``, ``cleared`` or ``split``)
      decides nothing; the card and report count, per category and flag code, the build's
      flags, those reviewed, confirmed, cleared and split, and those on items the verdict or
      veto removed. A line that is
      not valid JSON or breaks this contract, and a decision for an id the build does not hold,
      become entries of the release's ``dropped.jsonl`` (stage ``read_annotations``); they never
      stop the run.
  ``<DIR>/agreement.json``
      free-form JSON of agreement figures (e.g. Krippendorff's alpha and percent agreement per
      rubric question, with confidence intervals). It is shown as is in the card and the report;
      numbers found in it are plotted. An optional top-level ``"protocol"`` string describes the
      annotation protocol in the card.

  ``<DIR>/responses.jsonl`` (optional): every answer of the round under pseudonymous
      annotator ids; copied into the release as ``annotations/responses.jsonl``.

  A decision that needs an edit (a non-empty ``needs_edit``, or a ``fix`` without
  corrections) is left out with reason ``needs_edit`` unless ``--include-needs-edit``; one
  whose corrections conflict or cannot be read is left out whatever the flags. When no
  decision matches a record of the build, publish warns on stderr and in the card and report.
  With ``--require-annotation`` only records with an ``accept`` decision or an applied fix are
  published; without it, records without a decision are published too (and the card says how
  many were annotated).
* ``--targets FILE`` (optional, YAML or JSON): target counts per category x field,
  ``{"PBL": {"Health": 100, "*": 50}, "SA": {"Literature": 200}}``. ``"*"`` stands for every field
  of that category not named; categories and fields not covered keep all their records. Each
  cell keeps the records with the smallest ``sha256(f"{seed}:{id}")``, so the choice is seeded and
  deterministic; a cell with fewer records than its target keeps them all and the shortfall is
  reported.

Outputs (a folder, written to a hidden temporary folder next to it and renamed into place)
-------------------------------------------------------------------------------------------
* ``data/test-NNNNN-of-MMMMM.parquet``: one ``test`` split in one ``default`` config (MMIE has no
  train/dev/test split; filter on ``category`` for one category). Hugging Face ``datasets``
  features are declared in the Parquet schema metadata (key ``huggingface``): ``question``,
  ``answer`` and ``gt_answer`` are lists of ``{text, image}`` segments whose ``image`` is an
  ``Image`` feature (bytes embedded, path ``images/<sha256>.<ext>``). At most 100 rows and about
  100 MiB per row group; shards of at most ``--max-shard-mb`` (500) MB of row data.
* ``README.md``: the dataset card (YAML header + statistics, provenance, citations, limitations).
* ``manifest.json``: versions, config hash, checksums of the source files read, sha256, size and
  row count of every file written; ``mmloom verify RELEASE`` checks the release against it
  (``schemas.verify``), and ``mmloom show`` runs the quick part (no hashing) before reading.
* ``mmie/data.json`` + ``mmie/images/``: MMIE's evaluation input format, and
  ``mmie/scorer_limits.json`` (items MMIE's scorer truncates or skips; IF items left out).
* ``report/index.html`` + PNG plots.
* ``annotations/responses.jsonl`` (with ``--annotations``, when the pull wrote it).
* ``dropped.jsonl``: every build record not published, and every rejected annotation line, with
  stage and reason (``build written == published + dropped records``).

The same inputs give byte-identical Parquet, JSON, card and report: nothing depends on the
clock, the machine or the order files are listed in.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PublishOptions", "publish"]


def __getattr__(name: str) -> Any:
    # loaded on first use: the release writer imports datasets and matplotlib, which
    # `mmloom publish --help` (and the package import) should not pay for
    if name in __all__:
        from pipelines.publish import release

        return getattr(release, name)
    raise AttributeError(f"module 'pipelines.publish' has no attribute {name!r}")
