"""mmloom's SQL search engine for argilla-server 2.8 (no Elasticsearch needed).

Importing :mod:`mmloom_argilla_sql.engine` registers the engine under :data:`ENGINE_NAME`
with ``argilla_server.search_engine.SearchEngine.register``; the server then selects it with
``ARGILLA_SEARCH_ENGINE=mmloom-sql``. :mod:`mmloom_argilla_sql.launcher` imports the engine and
then runs the server, the background worker or the one-off preparation step.
"""

ENGINE_NAME = "mmloom-sql"
