"""``mmloom fetch``: download the real sources, verify them and lay them out for a build.

    mmloom fetch SOURCE... --to DIR [--split SOURCE=SPLIT[,SPLIT]]... [options]

See :mod:`pipelines.fetch.cli` for the options, :mod:`pipelines.fetch.sources` for what
each source downloads, and README.md ("Build from the real datasets").
"""
