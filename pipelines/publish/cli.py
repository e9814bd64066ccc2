"""``mmloom publish``: the command line of the publish stage (``main(argv)``).

    mmloom publish --build out/sample --output out/release --version 0.1.0
    mmloom publish --build out/sample --annotations out/annotations --require-annotation \
        --targets targets.yaml --seed 0 --output out/release --version 1.0.0 --force
    HF_TOKEN=... mmloom publish ... --push-to-hub OWNER/NAME
    HF_TOKEN=... mmloom publish --upload-only out/release --push-to-hub OWNER/NAME

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
    """:func:`main` with the arguments already parsed (``mmloom publish`` parses them first).

    With ``--push-to-hub`` the Hub is checked first (repo id, token, an answer:
    :func:`pipelines.publish.release.check_hub`), so nothing is written when the upload
    could not happen; ``--upload-only RELEASE`` uploads a written release and nothing else.
    """
    from pipelines.publish.release import PublishOptions, check_hub, publish, push_to_hub

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("httpx", "httpx2"):  # a line per Hub request: too much
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        if args.upload_only:
            return _upload_only(args)
        missing = [
            f"--{name}" for name in ("build", "output", "version") if not getattr(args, name)
        ]
        if missing:
            raise MmloomError(
                f"the following arguments are required: {', '.join(missing)} (or --upload-only "
                "RELEASE --push-to-hub REPO to upload a release already written)"
            )
        if args.max_shard_mb <= 0:
            raise MmloomError("--max-shard-mb must be positive")
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
        target = check_hub(args.push_to_hub) if args.push_to_hub else None
        manifest = publish(opts)
        print(
            f"release {opts.version}: {manifest['publish']['records']} records, "
            f"{manifest['publish']['dropped']} dropped (dropped.jsonl), "
            f"{len(manifest['files'])} files in {opts.output}"
        )
        if target is not None:
            url = push_to_hub(opts.output, target, opts.version)
            print(f"pushed to {url}")
    except MmloomError as exc:
        print(f"mmloom publish: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _upload_only(args: argparse.Namespace) -> int:
    from pipelines.publish.release import upload_release

    given = [f"--{name}" for name in ("build", "output", "version") if getattr(args, name)]
    if given or not args.push_to_hub:
        raise MmloomError(
            "--upload-only RELEASE takes only --push-to-hub REPO (the release's version is in "
            f"its manifest){'; drop ' + ', '.join(given) if given else ''}"
        )
    version, url = upload_release(args.upload_only, args.push_to_hub)
    print(f"release {version} in {args.upload_only} pushed to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
