"""conftest.py for argilla-server 2.8.0's own ``tests/unit/search_engine``, run on mmloom-sql.

``annotation/server/conformance.py`` copies this file over the sdist's
``tests/unit/search_engine/conftest.py`` (which only builds the Elasticsearch and OpenSearch
engines) and runs the suite with ``ARGILLA_SEARCH_ENGINE=mmloom-sql``. Being the closest
conftest, its fixtures replace the upstream ones of the same name. What it changes, and why:

* ``search_engine`` is mmloom's :class:`SQLSearchEngine`. The upstream fixtures create rows
  with factory_boy inside a transaction that is rolled back after each test, so no other
  connection sees them; the suite's database therefore uses SQLite's shared cache
  (``ARGILLA_DATABASE_URL=sqlite+aiosqlite:///file:PATH?cache=shared&uri=true``) and the
  engine opens it in that cache with ``PRAGMA read_uncommitted = 1``, flushing the test's
  session before each call (:class:`SharedCacheSQLSearchEngine`). Those are the only
  differences from the production engine; every query it runs is the production code.
* ``opensearch`` (an autouse session fixture upstream: a client of a running
  Elasticsearch) is :class:`NoElasticsearch`: ``indices.refresh`` is accepted (the SQL engine
  reads the tables at query time, so there is nothing to refresh) and any other use fails
  the test. The tests that inspect Elasticsearch's own index are deselected, each named in
  :data:`ES_INTERNAL` with its reason.
* Three helpers in ``test_commons.py`` write straight into an Elasticsearch index instead of
  going through the engine; they are replaced before the module's fixtures are read
  (:func:`_adapt_test_commons`) by versions that put the same data where the SQL engine
  reads it (Argilla's tables, or the engine's own ``index_records``).
* The ``TestBaseElasticAndOpenSearchEngine`` class is the engine-agnostic suite, but it is
  gated by a ``skipif`` on the engine's name; that one marker is removed.
* ``empty_job_queues`` (autouse upstream) empties argilla-server's Redis job queues between
  tests; no search-engine test enqueues a job, so the suite runs without Redis.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncGenerator
from pathlib import Path
from urllib.parse import quote

import pytest
import pytest_asyncio
from argilla_server.models import Response
from argilla_server.settings import settings
from mmloom_argilla_sql.engine import SQLSearchEngine
from sqlalchemy import make_url, select
from tests.database import TestSession
from tests.factories import (
    DatasetFactory,
    RecordFactory,
    ResponseFactory,
    TextFieldFactory,
    UserFactory,
)

COMMONS = "tests/unit/search_engine/test_commons.py::TestBaseElasticAndOpenSearchEngine::"
ES_CLASS = "tests/unit/search_engine/test_elastisearch.py::TestElasticSearchEngine::"
OS_CLASS = "tests/unit/search_engine/test_opensearch.py::TestOpenSearchEngine::"

# Tests that read Elasticsearch's own index (its mappings, settings or stored documents)
# through the ``opensearch`` client; they say nothing about search results. Every test id
# here is deselected with all its parameters; nothing else is.
_MAPPING = "asserts the Elasticsearch index mapping/settings"
_DOCS = "asserts the documents stored in the Elasticsearch index"
ES_INTERNAL: dict[str, str] = {
    COMMONS + "test_create_index_for_dataset": _MAPPING,
    COMMONS + "test_create_index_for_dataset_with_fields": _MAPPING,
    COMMONS + "test_create_metadata_property": _MAPPING,
    COMMONS + "test_create_index_for_dataset_with_metadata_properties": _MAPPING,
    COMMONS + "test_create_index_for_dataset_with_questions": _MAPPING,
    COMMONS + "test_configure_metadata_property": _MAPPING,
    COMMONS + "test_index_records": _DOCS,
    COMMONS + "test_index_records_with_none_field_values": _DOCS,
    COMMONS + "test_index_records_with_suggestions": _DOCS,
    COMMONS + "test_index_records_with_metadata": _DOCS,
    COMMONS + "test_index_records_with_vectors": _DOCS,
    COMMONS + "test_delete_records": _DOCS + " (ids query after the delete)",
    COMMONS + "test_update_record_response": _DOCS + " and the responses mapping",
    COMMONS + "test_delete_record_response": _DOCS + " (the record's nested responses)",
    COMMONS + "test_annotators_limits": _MAPPING + " (nested responses under many users)",
    COMMONS + "test_annotator_limits_increasing_default_fields_limit": _MAPPING
    + " (index.mapping.total_fields.limit)",
    ES_CLASS + "test_create_dataset_index_with_vectors": _MAPPING + " (dense_vector fields)",
    ES_CLASS + "test_create_index_with_existing_index": "expects elasticsearch8's RequestError",
    OS_CLASS + "test_create_dataset_index_with_vectors": _MAPPING + " (knn_vector fields)",
    OS_CLASS + "test_create_index_for_dataset": _MAPPING + " (OpenSearch knn settings)",
    OS_CLASS + "test_create_index_with_existing_index": "expects opensearchpy's RequestError",
}

_ENGINE_SKIPIF_REASON = "Running on elasticsearch/opensearch engine"


def _es_internal_reason(nodeid: str) -> str | None:
    base = nodeid.split("[", 1)[0]
    return ES_INTERNAL.get(base)


def pytest_report_header(config) -> list[str]:
    return [
        f"search engine under test: mmloom-sql ({SQLSearchEngine.__module__})",
        f"deselected as Elasticsearch-internal: {len(ES_INTERNAL)} test functions "
        "(see ES_INTERNAL in this conftest)",
    ]


def pytest_collection_modifyitems(config, items) -> None:
    """Deselect :data:`ES_INTERNAL`; lift the engine-name ``skipif`` of the common suite."""
    keep, dropped = [], []
    for item in items:
        (dropped if _es_internal_reason(item.nodeid) else keep).append(item)
        for node in item.listchain():
            if node.name == "TestBaseElasticAndOpenSearchEngine":
                node.own_markers[:] = [
                    m
                    for m in node.own_markers
                    if not (m.name == "skipif" and m.kwargs.get("reason") == _ENGINE_SKIPIF_REASON)
                ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


# -- the database and the engine ------------------------------------------------------------


def _database_file() -> str:
    url = make_url(settings.database_url)
    query = dict(url.query)
    if not (url.database or "").startswith("file:") or query.get("cache") != "shared":
        raise RuntimeError(
            "The conformance suite needs ARGILLA_DATABASE_URL="
            "sqlite+aiosqlite:///file:PATH?cache=shared&uri=true (got "
            f"{settings.database_url!r}); run it through annotation/server/conformance.py."
        )
    return url.database.removeprefix("file:")


class SharedCacheSQLSearchEngine(SQLSearchEngine):
    """The production engine, reading the suite's database through SQLite's shared cache.

    Before each call it flushes the test's session, as SQLAlchemy's autoflush does before a
    query through that session: the upstream tests hand the engine ORM objects changed in
    memory (``record.status = completed``, then ``index_records``), which an engine that
    copies the objects sees at once, and one that reads the rows sees once they are flushed.
    In the server every change is flushed (and committed) before a search reads it.
    """

    async def _run(self, fn, *args):
        await TestSession().flush()
        return await super()._run(fn, *args)

    def _open_database(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            f"file:{quote(self.db_path)}?cache=shared", uri=True, check_same_thread=False
        )
        conn.execute("PRAGMA read_uncommitted = 1")
        return conn


@pytest_asyncio.fixture()
async def search_engine(tmp_path_factory) -> AsyncGenerator[SQLSearchEngine, None]:
    db_path = _database_file()
    index_path = Path(db_path).with_name("mmloom-search-index.db")
    engine = SharedCacheSQLSearchEngine(db_path=db_path, index_path=str(index_path))
    yield engine
    await engine.close()


class NoElasticsearch:
    """Stands where the upstream suite has an Elasticsearch client (see the module doc)."""

    class _Indices:
        def refresh(self, index: str) -> None:
            """Nothing to refresh: the SQL engine reads Argilla's tables at query time."""

        def __getattr__(self, name: str):
            raise AssertionError(f"opensearch.indices.{name}: inspects Elasticsearch's index")

    indices = _Indices()

    def __getattr__(self, name: str):
        raise AssertionError(f"opensearch.{name}: inspects Elasticsearch's index")


@pytest.fixture(scope="session", autouse=True)
def opensearch() -> NoElasticsearch:
    return NoElasticsearch()


@pytest.fixture(autouse=True)
def empty_job_queues():
    """No Redis: the search-engine tests enqueue no background job (see the module doc)."""
    yield


# -- helpers of test_commons.py that wrote into Elasticsearch ---------------------------------


@pytest_asyncio.fixture(scope="function")
async def dataset_for_pagination(search_engine: SQLSearchEngine):
    """100 records whose only text is "The same text for all documents", indexed.

    Upstream creates a dataset without fields and bulk-writes documents carrying that text
    straight into Elasticsearch; here the text is a real field, indexed by the engine.
    """
    field = await TextFieldFactory.create(name="text")
    dataset = await DatasetFactory.create(fields=[field], questions=[])
    await RecordFactory.create_batch(
        size=100, dataset=dataset, fields={"text": "The same text for all documents"}
    )
    await dataset.awaitable_attrs.records
    await dataset.awaitable_attrs.fields
    await search_engine.create_index(dataset)
    await search_engine.index_records(dataset, dataset.records)
    yield dataset
    await search_engine.delete_index(dataset)


async def set_records_vectors(search_engine, dataset, vectors) -> None:
    """Upstream copies vectors into the Elasticsearch documents; the SQL engine reads them
    from the ``vectors`` table, where ``VectorFactory`` has already put every one of them."""
    assert all(vector.id is not None for vector in vectors)


async def _update_records_responses(
    self, opensearch, index_name, records, status, user=None, rating_value=None
) -> None:
    """Give each record a response with ``status`` (and rating) from a new user and ``user``.

    Upstream appends these responses to the records' Elasticsearch documents; here they are
    rows of ``responses``. Argilla allows one response per user and record, so where the
    upstream data gives ``user`` a second one on a record, it replaces the first. Only a
    filter scoped to ``user`` could tell; the one test that has such a filter on those
    records (``..._does_not_affect_the_result_scores``) asks for every status the user gave.
    """
    another_user = await UserFactory.create()
    db = TestSession()
    for record in records:
        values = {"rating": {"value": -1}}
        await ResponseFactory.create(
            record=record, user=another_user, status=status.value, values=values
        )
        if user:
            values = {"rating": {"value": rating_value or -1}}
            existing = (
                await db.execute(select(Response).filter_by(record_id=record.id, user_id=user.id))
            ).scalar_one_or_none()
            if existing is None:
                await ResponseFactory.create(
                    record=record, user=user, status=status.value, values=values
                )
            else:
                existing.status, existing.values = status.value, values
                await db.flush()


def _adapt_test_commons(module) -> None:
    module.dataset_for_pagination = dataset_for_pagination
    module.set_records_vectors = set_records_vectors
    module.TestBaseElasticAndOpenSearchEngine._update_records_responses = _update_records_responses


@pytest.hookimpl(hookwrapper=True)
def pytest_pycollect_makemodule(module_path, parent):
    outcome = yield
    collector = outcome.get_result()
    if Path(module_path).name == "test_commons.py":
        _adapt_test_commons(collector.obj)  # before the module's fixtures are parsed
