"""mmloom pipelines: the ``mmloom build`` Beam job and its stages."""

__version__ = "0.1.0"
