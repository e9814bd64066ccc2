"""``mmloom fetch``: get the real sources from where they are published, verified and laid out.

    mmloom fetch list                                  # every file, size, licence, totals
    mmloom fetch all --to /data/mmloom --dry-run       # the same, with paths and status
    mmloom fetch all --to /data/mmloom
    mmloom fetch vist coco --to /data/mmloom --split vist=test --split coco=val
    mmloom fetch mathvista remi --to /data/mmloom --mathvista-layout github
    mmloom build --config /data/mmloom/mmloom.yaml --output out/real

Each source's files go to ``DIR/<source>/`` in the layout of its README, archives are kept
in ``DIR/downloads/<source>/`` (``--delete-archives`` removes them once unpacked), and
``DIR/mmloom.yaml`` is a ready build config pointing at every source whose files are all
fetched. Every file is verified against ``sources/<source>/checksums.tsv``; files it does
not know yet are recorded on first fetch in ``DIR/<source>/checksums.tsv`` and verified on
every later one. Downloads resume after an interruption: run the same command again.

Hand-downloaded files have one place: ``DIR/manual/<source>/<file>`` (or
``--manual-dir``). Hosts that cannot be scripted (wikiHow-VGSI's and VIST's images on
Google Drive) are downloaded by hand; so may be any file whose download fails. A fetch
first gets everything a script can, then lists the files still to be put there by hand
(exit status 3); run the same command again once they are there, and it verifies, unpacks
and lays them out. Hub datasets (MathVista, ReMI) come through
``huggingface_hub`` pinned to a commit; set ``HF_TOKEN`` for gated ones and ``HF_ENDPOINT``
for a hub mirror. ``--mirror URL`` (or ``MMLOOM_FETCH_MIRROR``) fetches every HTTP file from
``URL/<host>/<path>`` instead, e.g. an internal mirror.

Caps (see :mod:`pipelines.fetch.limits`): a download never gets more bytes than its
checksums row gives, or ``--max-download`` when no row gives a size; an archive unpacks at
most ``--max-unpacked`` bytes and ``--max-members`` members, all or nothing. Ctrl-C or
SIGTERM stop the fetch with one message; what was unpacked half is removed, and downloads
resume on the next run.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from pipelines.fetch import listing
from pipelines.fetch.core import MISSING, FetchSettings, fetch_plan, missing_manual
from pipelines.fetch.http import RetryPolicy
from pipelines.fetch.limits import (
    DEFAULT_MAX_DOWNLOAD,
    DEFAULT_MAX_MEMBERS,
    DEFAULT_MAX_UNPACKED,
    FetchLimits,
    parse_size,
    write_failed,
)
from pipelines.fetch.sources import Plan, specs
from schemas import yamlsafe
from schemas.errors import MmloomError

LOG = logging.getLogger("mmloom.fetch")
CONFIG_NAME = "mmloom.yaml"
LIST = "list"
EXIT_BY_HAND = 3  # everything a script can get is fetched; files to get by hand remain
EXIT_STATUSES = (
    "Exit status: 0 when every file of the chosen sources is fetched and laid out; 3 when "
    "everything a script can download is, and files to be downloaded by hand remain (listed "
    "with the exact path to put each at; the config names the complete sources); 2 on an "
    "error (one message saying what to do)."
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> argparse.ArgumentParser:
    """The options of ``mmloom fetch``."""
    known = specs()
    parser = argparse.ArgumentParser(
        prog="mmloom fetch",
        description="Download the real sources, verify them and lay them out for a build.",
        allow_abbrev=False,
        usage="mmloom fetch [list] SOURCE... [--to DIR] [options]",
        epilog="Splits: "
        + "; ".join(
            f"{n}: {', '.join(s.splits)} (default {','.join(s.default_splits)})"
            for n, s in known.items()
        )
        + ". "
        + EXIT_STATUSES,
    )
    parser.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help=f"{', '.join(known)} or all; `list [SOURCE...]` prints the plan (every file, "
        "its size, licence, where it comes from, where it goes, totals) and fetches nothing "
        "(without sources: all)",
    )
    parser.add_argument(
        "--to", default=None, metavar="DIR", help="folder to fetch into (created); needed to fetch"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (as `fetch list`, with what is already in --to) and fetch nothing",
    )
    parser.add_argument(
        "--json", action="store_true", help="with list or --dry-run: print the plan as JSON"
    )
    parser.add_argument(
        "--split",
        action="append",
        default=[],
        metavar="SOURCE=SPLIT[,SPLIT]",
        help="splits to fetch per source (repeatable); a bare SPLIT applies to every "
        "chosen source that has it. Only the chosen splits' files are downloaded",
    )
    for spec in known.values():  # each source's own options (sources/<name>/fetch.py)
        for option in spec.options:
            parser.add_argument(
                option.flag, choices=option.choices, default=option.default, help=option.help
            )
    parser.add_argument(
        "--manual-dir",
        default=None,
        help="where hand-downloaded files are put, for every source (also a file whose "
        "download failed): <dir>/<source>/<file> (default DIR/manual)",
    )
    parser.add_argument(
        "--mirror",
        default=os.environ.get("MMLOOM_FETCH_MIRROR"),
        help="fetch http(s)://HOST/PATH from MIRROR/HOST/PATH (env MMLOOM_FETCH_MIRROR)",
    )
    parser.add_argument(
        "--checksums-dir",
        default=None,
        help="read <dir>/<source>/checksums.tsv instead of the project's sources/ folders",
    )
    parser.add_argument(
        "--register-checksums",
        action="store_true",
        help="write the checksums recorded on this fetch into the project's checksums.tsv",
    )
    parser.add_argument("--retries", type=int, default=5, help="retries per file (default 5)")
    parser.add_argument(
        "--backoff",
        type=float,
        default=2.0,
        help="seconds before the first retry, doubled each time (default 2)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds without data before a retry"
    )
    parser.add_argument(
        "--max-download",
        default=os.environ.get("MMLOOM_FETCH_MAX_DOWNLOAD", DEFAULT_MAX_DOWNLOAD),
        metavar="SIZE",
        help="the most a download may get when no checksums row gives its size (a file "
        "whose size is known is cut one byte past it); e.g. 500MB, 32GB (default "
        f"{DEFAULT_MAX_DOWNLOAD}; env MMLOOM_FETCH_MAX_DOWNLOAD)",
    )
    parser.add_argument(
        "--max-unpacked",
        default=os.environ.get("MMLOOM_FETCH_MAX_UNPACKED", DEFAULT_MAX_UNPACKED),
        metavar="SIZE",
        help="the most one archive may write when unpacked; a larger one is refused with "
        f"nothing kept (default {DEFAULT_MAX_UNPACKED}; env MMLOOM_FETCH_MAX_UNPACKED)",
    )
    parser.add_argument(
        "--max-members",
        default=os.environ.get("MMLOOM_FETCH_MAX_MEMBERS", str(DEFAULT_MAX_MEMBERS)),
        metavar="N",
        help="the most members (files and folders) one archive may hold (default "
        f"{DEFAULT_MAX_MEMBERS}; env MMLOOM_FETCH_MAX_MEMBERS)",
    )
    parser.add_argument(
        "--delete-archives", action="store_true", help="delete archives once unpacked"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def choose_splits(names: list[str], split_args: list[str]) -> dict[str, tuple[str, ...]]:
    """Source -> splits from ``--split`` values (``SOURCE=A,B``, or a bare ``A`` for every
    source that has it); sources without one get their default splits."""
    chosen: dict[str, tuple[str, ...]] = {}
    # bare splits first, so that SOURCE=SPLIT wins whatever the order on the command line
    for value in sorted(split_args, key=lambda v: "=" in v):
        if "=" in value:
            source, _, rest = value.partition("=")
            if source not in names:
                raise MmloomError(
                    f"--split {value}: {source!r} is not among the sources to fetch "
                    f"({', '.join(names)})"
                )
            targets = [source]
        else:
            rest = value
            targets = [n for n in names if all(s in specs()[n].splits for s in value.split(","))]
            if not targets:
                raise MmloomError(
                    f"--split {value}: none of {', '.join(names)} has that split; use "
                    "SOURCE=SPLIT (see `mmloom fetch --help` for each source's splits)"
                )
        splits = tuple(dict.fromkeys(s.strip() for s in rest.split(",") if s.strip()))
        for source in targets:
            spec = specs()[source]
            unknown = [s for s in splits if s not in spec.splits]
            if unknown or not splits:
                raise MmloomError(
                    f"--split {value}: {source} has the splits {', '.join(spec.splits)}"
                )
            if spec.single_split and len(splits) > 1:
                raise MmloomError(
                    f"--split {value}: a {source} build reads one split; fetch one at a time"
                )
            chosen[source] = splits
    return {n: chosen.get(n, specs()[n].default_splits) for n in names}


def source_names(values: list[str]) -> list[str]:
    names: list[str] = []
    for value in values:
        known = specs()
        picked = list(known) if value == "all" else [value]
        for name in picked:
            if name not in known:
                raise MmloomError(f"unknown source {name!r}; choose from {', '.join(known)}, all")
            if name not in names:
                names.append(name)
    return names


def write_config(to: Path, plans: list[Plan], command: str) -> Path:
    """``DIR/mmloom.yaml``: a build config with every source fetched into ``DIR`` so far.

    Paths are relative to ``DIR`` (the config's folder), so the folder can be moved whole.
    Sources fetched by earlier runs into the same folder stay in the config.
    """
    path = to / CONFIG_NAME
    sources: dict = {}
    if path.is_file():
        try:
            old = yamlsafe.load(path.read_text(encoding="utf-8")) or {}
            sources.update(old.get("sources") or {})
        except yaml.YAMLError:
            LOG.warning("%s is not valid YAML; writing a new one", path)
    for plan in plans:
        sources[plan.source] = plan.config
    body = {"version": 1, "name": "fetched", "sources": sources}
    header = (
        "# Written by `mmloom fetch`; paths are relative to this file's folder.\n"
        f"# Last command: {command}\n"
        "# Build:  mmloom build --config THIS_FILE --output OUT   (add --no-clip for a\n"
        "# quick CPU run; otherwise CLIP ViT-L-14/openai weights are downloaded on first use,\n"
        "# see README.md, 'CLIP scoring')\n"
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header + yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def limits_of(args: argparse.Namespace) -> FetchLimits:
    members = str(args.max_members).strip()
    if not members.isdigit() or int(members) <= 0:
        raise MmloomError(f"--max-members {args.max_members!r} is not a positive whole number")
    return FetchLimits(
        max_download=parse_size(args.max_download, "--max-download"),
        max_unpacked=parse_size(args.max_unpacked, "--max-unpacked"),
        max_members=int(members),
    )


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the fetch is, so that its cleanup runs as for Ctrl-C."""


@contextmanager
def _stoppable() -> Iterator[None]:
    """Ctrl-C and SIGTERM become one message (exit 2) after the cleanup of what was cut:
    half-unpacked archives are removed (:mod:`pipelines.fetch.extract`); partial downloads
    stay as ``.part`` files, resumed by the next run. An OSError that no step turned into a
    message (a folder that cannot be created, a file that cannot be renamed) becomes one."""

    def on_term(signum, frame) -> None:
        raise _Terminated()

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if main_thread else None
    try:
        yield
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
        raise MmloomError(
            f"{what}; nothing half-unpacked was kept. Run the same command again: downloads "
            "resume where they stopped and files already laid out are skipped"
        ) from None
    except OSError as exc:  # a fault of the disk or of permissions, not of a source
        path = Path(exc.filename) if exc.filename else Path(".")
        raise write_failed(path, exc, "the fetched files") from None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def run(argv: list[str]) -> int:
    with _stoppable():
        return _run(argv)


def _run(argv: list[str]) -> int:
    args = parse_args(argv)
    listing_only = bool(args.sources) and args.sources[0] == LIST
    values = args.sources[1:] if listing_only else args.sources
    dry = listing_only or args.dry_run
    if not values and not dry:
        raise MmloomError(
            "name the sources to fetch (or all); `mmloom fetch list` shows what each needs"
        )
    names = source_names(values or ["all"])
    if args.json and not dry:
        raise MmloomError("--json prints the plan: use it with `mmloom fetch list` or --dry-run")
    if not args.to and not dry:
        raise MmloomError(
            "--to DIR is missing: name the folder to fetch into (`mmloom fetch list` and "
            "--dry-run show the plan without one)"
        )
    splits = choose_splits(names, args.split)
    to = Path(args.to).expanduser().resolve() if args.to else Path("DIR")
    manual = Path(args.manual_dir).expanduser().resolve() if args.manual_dir else to / "manual"
    settings = FetchSettings(
        to=to,
        manual_dir=manual,
        checksums_dir=Path(args.checksums_dir).resolve() if args.checksums_dir else None,
        mirror=args.mirror or None,
        policy=RetryPolicy(retries=args.retries, backoff=args.backoff, timeout=args.timeout),
        progress=not args.no_progress,
        delete_archives=args.delete_archives,
        register=args.register_checksums,
        limits=limits_of(args),
    )
    known = specs()
    plans = [
        known[n].plan(splits[n], {o.key: getattr(args, o.key) for o in known[n].options})
        for n in names
    ]
    if dry:
        items = listing.entries(plans, settings, with_status=bool(args.to))
        where = str(to) if args.to else None
        render = listing.render_json if args.json else listing.render_text
        print(render(plans, items, where))
        return 0

    totals = listing.totals(listing.entries(plans, settings, with_status=True))
    LOG.info(
        "plan: %s by script, %s by hand (`--dry-run` lists them)",
        listing.total_text(totals["scriptable"]),
        listing.total_text(totals["by_hand"]),
    )
    missing = [hand for plan in plans for hand in missing_manual(plan, settings)]
    if missing:
        LOG.warning(
            "%d file(s) must be downloaded by hand and are not in place yet (listed at the "
            "end); fetching everything a script can first",
            len(missing),
        )
    complete: list[Plan] = []
    for plan in plans:
        LOG.info("fetching %s (%s) into %s", plan.source, ", ".join(plan.splits), to / plan.source)
        report = fetch_plan(plan, settings)
        for filename, what in report.items():
            LOG.info("  %s/%s: %s", plan.source, filename, what)
        if MISSING not in report.values():
            complete.append(plan)
    command = "mmloom fetch " + " ".join(argv)
    config = write_config(to, complete, command) if complete else None
    done = [p.source for p in complete]
    if done:
        print(f"fetched {', '.join(done)} into {to}")
    if config is not None:
        print(f"build with: mmloom build --config {config} --output OUT")
    missing = [hand for plan in plans for hand in missing_manual(plan, settings)]
    if not missing:
        return 0
    waiting = list(dict.fromkeys(h.source for h in missing))
    print(
        f"\n{len(missing)} file(s) of {', '.join(waiting)} must be downloaded by hand (their "
        "host needs a browser); everything else was fetched. Download each and put it at the "
        "path shown, then run the same command again:"
    )
    print("\n".join(h.lines() for h in missing))
    scriptable = [p.source for p in plans if not any(j.manual for j in p.jobs)]
    if scriptable and done:
        print(
            f"Meanwhile the config names {', '.join(done)}; "
            f"`mmloom fetch {' '.join(scriptable)} --to {to}` is the fetch of the sources that "
            "need nothing by hand (exit status 0)."
        )
    return EXIT_BY_HAND
