"""The conftest with which argilla-server's own search-engine tests run against mmloom-sql.

``search_engine_conftest.py`` is copied into the unpacked argilla-server sdist by
``annotation/server/conformance.py`` and imported there by pytest, inside the conformance
test venv; nothing imports it from mmloom.
"""
