"""mmloom's commands, the top layer: the ``mmloom`` CLI (``cli.py``, ``options.py``), the
``mmloom build`` Apache Beam job and its stages (``build.py``, ``config.py``, ``images.py``
(the pure image code the ``LoadImages`` stage runs), ``transforms/``,
``dedupe/``, ``clip/``), and two plain-Python commands that run no Beam pipeline:
``mmloom fetch`` (``fetch/``: downloads, checksums, safe extraction) and ``mmloom publish``
(``publish/``: reads a finished build, writes the release)."""

__version__ = "0.1.0"
