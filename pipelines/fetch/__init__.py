"""``mmloom fetch``: download the real sources, verify them and lay them out for a build.

    mmloom fetch SOURCE... --to DIR [--split SOURCE=SPLIT[,SPLIT]]... [options]
    mmloom fetch list [SOURCE...] [--to DIR] [--json]     (or SOURCE... --dry-run)

See :mod:`pipelines.fetch.cli` for the options, :mod:`pipelines.fetch.sources` for what
each source downloads, :mod:`pipelines.fetch.listing` for the plan a dry run prints, and
README.md ("Build from the real datasets").
"""
