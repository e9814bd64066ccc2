"""Code that runs inside the argilla-server virtual environment, not in the pipeline's.

This folder is put on the ``PYTHONPATH`` of the argilla-server processes that
``mmloom annotate serve`` starts, so ``mmloom_argilla_sql`` imports there as a top-level
package. Nothing in it may import mmloom's pipeline code (the server venv does not have
its dependencies); only ``mmloom_argilla_sql.textquery`` is pure and also imported by tests.
``conformance/search_engine_conftest.py`` is the conftest with which
``annotation/server/conformance.py`` runs argilla-server's own search-engine tests against
the engine, in a separate test venv.
"""
