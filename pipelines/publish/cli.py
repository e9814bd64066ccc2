"""``mmloom publish``: the command line of the publish stage (``main(argv)``).

    mmloom publish --build out/sample --output out/release --version 0.1.0
    mmloom publish --build out/sample --annotations out/annotations --require-annotation \
        --targets targets.yaml --seed 0 --output out/release --version 1.0.0 --force
    HF_TOKEN=... mmloom publish ... --push-to-hub OWNER/NAME

See :mod:`pipelines.publish` for the inputs and the release layout.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipelines.publish.release import PublishOptions, publish, push_to_hub
from schemas.errors import MmloomError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mmloom publish",
        description="Write a release (Parquet shards, card, manifest, MMIE export, report) "
        "from a build.",
    )
    p.add_argument("--build", required=True, help="the --output folder of `mmloom build`")
    p.add_argument("--output", required=True, help="release folder to write")
    p.add_argument("--version", required=True, help="release version X.Y.Z")
    p.add_argument(
        "--annotations",
        help="folder of `mmloom annotate pull` (decisions.jsonl, agreement.json)",
    )
    p.add_argument(
        "--require-annotation",
        action="store_true",
        help="publish only records with an accept decision or an applied fix",
    )
    p.add_argument(
        "--include-needs-edit",
        action="store_true",
        help="also publish records whose decision needs an edit (a fix without an applicable "
        "correction, an impossible field/subfield pair); by default they are left out "
        "(dropped.jsonl reason needs_edit); ignored with --require-annotation",
    )
    p.add_argument("--targets", help="YAML/JSON target counts per category x field")
    p.add_argument("--seed", type=int, default=0, help="seed of the stratified selection")
    p.add_argument("--force", action="store_true", help="replace an existing release folder")
    p.add_argument(
        "--max-shard-mb",
        type=float,
        default=500,
        help="largest Parquet shard in MB (10^6 bytes) of row data (default 500)",
    )
    p.add_argument(
        "--push-to-hub",
        metavar="REPO",
        help="upload the release to this Hugging Face dataset repo (token from HF_TOKEN)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``mmloom publish``; returns the exit status (2 on a user error)."""
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.max_shard_mb <= 0:
        print("mmloom publish: error: --max-shard-mb must be positive", file=sys.stderr)
        return 2
    opts = PublishOptions(
        build=args.build,
        output=args.output,
        version=args.version,
        annotations=args.annotations,
        require_annotation=args.require_annotation,
        include_needs_edit=args.include_needs_edit,
        targets=args.targets,
        seed=args.seed,
        force=args.force,
        max_shard_bytes=int(args.max_shard_mb * 1_000_000),
    )
    try:
        manifest = publish(opts)
        print(
            f"release {opts.version}: {manifest['publish']['records']} records, "
            f"{manifest['publish']['dropped']} dropped (dropped.jsonl), "
            f"{len(manifest['files'])} files in {opts.output}"
        )
        if args.push_to_hub:
            url = push_to_hub(opts.output, args.push_to_hub, opts.version)
            print(f"pushed to {url}")
    except MmloomError as exc:
        print(f"mmloom publish: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
