"""The database URL `cmcat sql` connects with: a role that can only read cmcat's tables.

On the embedded server that is `cmcat_reader`, made by migration 0002_sql_reader_role: LOGIN,
no superuser, no server-file or program roles, SELECT on the public tables (default privileges
give it the tables made later too). The session connects as it over the server's Unix socket
(local trust, no TCP), so the user's SQL has no way back to the superuser: there is no SET ROLE
to undo. On an external server, CMCAT_SQL_DATABASE_URL names such a role; without it `cmcat sql`
uses CMCAT_DATABASE_URL and warns when that role is privileged (results.sql.run_read_only).
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from clustermass.config import Settings
from clustermass.db.urls import normalise_url

READER_ROLE = "cmcat_reader"


def sql_url(settings: Settings) -> str:
    """The URL for `cmcat sql`; on the embedded server this first brings the schema (and with it
    the reader role) up to date."""
    if settings.sql_database_url:
        return normalise_url(settings.sql_database_url)
    if settings.database_url:
        return normalise_url(settings.database_url)
    from clustermass.db import migrate
    from clustermass.db.engine import get_engine, resolve_url

    migrate.upgrade(get_engine(settings))
    url = make_url(resolve_url(settings)).set(username=READER_ROLE, password=None)
    return url.render_as_string(hide_password=False)
