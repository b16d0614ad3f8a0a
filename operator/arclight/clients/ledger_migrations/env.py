"""Alembic environment of the ledger's schema.

:meth:`arclight.clients.ledger.Ledger.migrate` passes its connection (already in a
transaction, holding the migration lock) as ``config.attributes["connection"]``; the alembic
command line connects to ``sqlalchemy.url`` instead, and ``--sql`` prints the migrations.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

config = context.config
VERSION_TABLE = config.get_main_option("version_table") or "ledger_alembic_version"


def _run(connection: Connection) -> None:
    context.configure(connection=connection, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True,
                      version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url (a postgresql+psycopg:// URL)")
    with create_engine(url, poolclass=NullPool).connect() as connection:
        _run(connection)
