"""The ``mmloom`` command line: a thin layer over the pipelines.

mmloom build --config CONFIG --output DIR [--overwrite] [Beam flags]
mmloom show DIR [--id ID] [--jsonl] [--limit N] [--summary] [--image-uris] [--image PATH]
mmloom fetch SOURCE... --to DIR [--split SOURCE=SPLIT] (download, verify, lay out; writes a config)
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import textwrap
from collections import Counter

from schemas.errors import MmloomError


def _cmd_build(argv: list[str]) -> int:
    from pipelines import build

    build.run(argv)
    return 0


def _cmd_show(argv: list[str]) -> int:
    from schemas.buildio import read_records, read_stats, require_complete
    from schemas.jsonsafe import dumps_strict
    from schemas.store import ImageStore

    parser = argparse.ArgumentParser(
        prog="mmloom show",
        description="Print records of a build as JSON (streamed, in the order of the shards).",
    )
    parser.add_argument("build_dir", help="the --output folder of `mmloom build`")
    parser.add_argument("--id", dest="record_id", help="print only this record")
    parser.add_argument("--jsonl", action="store_true", help="one record per line")
    parser.add_argument("--limit", type=int, default=None, help="print at most N records")
    parser.add_argument("--summary", action="store_true", help="print counts instead of records")
    parser.add_argument(
        "--image-uris",
        action="store_true",
        help="add each image's location in the build's image store (images[].uri)",
    )
    parser.add_argument(
        "--image",
        metavar="PATH",
        help="write the bytes of one stored image (images/<sha256>.<ext>) to stdout",
    )
    args = parser.parse_args(argv)

    store = ImageStore(args.build_dir)
    if args.image:
        try:
            data = store.get(args.image)
        except (ValueError, FileNotFoundError) as exc:
            raise MmloomError(str(exc)) from exc
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    require_complete(args.build_dir)
    records = read_records(args.build_dir)
    if args.record_id:
        records = (r for r in records if r["id"] == args.record_id)
    if args.summary:
        by_cat: Counter = Counter()
        total = 0
        for r in records:
            by_cat[(r["category"], r["field"])] += 1
            total += 1
        print(f"{total} records in {args.build_dir}")
        for (cat, field), n in sorted(by_cat.items()):
            print(f"  {cat:<4} {field:<12} {n}")
        stats = read_stats(args.build_dir)
        if stats:
            print("per source: read = written + dropped")
            for name, s in stats["sources"].items():
                dropped = sum(s["dropped"].values())
                reasons = ", ".join(f"{k} {v}" for k, v in s["dropped"].items()) or "-"
                print(f"  {name:<10} {s['read']} = {s['written']} + {dropped}  ({reasons})")
        return 0
    if args.limit is not None:
        records = itertools.islice(records, max(args.limit, 0))
    shown = 0
    out = sys.stdout
    for r in records:
        if args.image_uris:
            for im in r["images"]:
                im["uri"] = store.uri(im["path"])
        if args.jsonl:
            out.write(dumps_strict(r, ensure_ascii=False) + "\n")
        else:
            text = dumps_strict(r, ensure_ascii=False, indent=2)
            out.write(("[\n" if shown == 0 else ",\n") + textwrap.indent(text, "  "))
        shown += 1
    if args.record_id and shown == 0:
        raise MmloomError(f"no record with id {args.record_id} in {args.build_dir}")
    if not args.jsonl:
        out.write("\n]\n" if shown else "[]\n")
    return 0


def _needs_extra(command: str, extra: str, exc: ModuleNotFoundError) -> MmloomError:
    return MmloomError(
        f"`mmloom {command}` needs the {exc.name!r} package, which the worker install leaves "
        f"out; install the extra: pip install 'mmloom[{extra}]' (or `make venv` in a checkout)"
    )


def _cmd_publish(argv: list[str]) -> int:
    try:
        from pipelines.publish.cli import main as publish_main

        return publish_main(argv)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "matplotlib":
            raise _needs_extra("publish", "report", exc) from exc
        raise


def _cmd_fetch(argv: list[str]) -> int:
    from pipelines.fetch.cli import run

    return run(argv)


def _cmd_annotate(argv: list[str]) -> int:
    try:
        from annotation.cli import main as annotate_main

        return annotate_main(argv)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("argilla", "krippendorff"):
            raise _needs_extra("annotate", "annotate", exc) from exc
        raise


COMMANDS = {
    "build": _cmd_build,
    "fetch": _cmd_fetch,
    "show": _cmd_show,
    "annotate": _cmd_annotate,
    "publish": _cmd_publish,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        if argv and argv[0] not in ("-h", "--help"):
            print(
                f"\nunknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)}",
                file=sys.stderr,
            )
            return 2
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    try:
        return COMMANDS[argv[0]](argv[1:])
    except MmloomError as exc:
        print(f"mmloom {argv[0]}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
