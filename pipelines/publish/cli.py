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

from pipelines.options import PUBLISH_DESCRIPTION, add_publish_arguments
from schemas.errors import MmloomError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mmloom publish", description=PUBLISH_DESCRIPTION, allow_abbrev=False
    )
    return add_publish_arguments(p)


def main(argv: list[str] | None = None) -> int:
    """Run ``mmloom publish``; returns the exit status (2 on a user error)."""
    return run_parsed(parser().parse_args(sys.argv[1:] if argv is None else argv))


def run_parsed(args: argparse.Namespace) -> int:
    """:func:`main` with the arguments already parsed (``mmloom publish`` parses them first)."""
    from pipelines.publish.release import PublishOptions, publish, push_to_hub

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
