"""A local Argilla server for annotation: argilla-server 2.8 on SQLite + Redis.

``cli`` (``mmloom annotate serve | stop``), ``install`` (the server's own venv),
``runtime`` (processes, accounts, state) and ``argilla_ext/mmloom_argilla_sql`` (the SQL
search engine and launcher that run inside the server's venv).
"""
