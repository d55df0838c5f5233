"""PostgreSQL access: engine and sessions, the embedded server, models, bulk COPY helpers."""

from clustermass.db.engine import get_engine, resolve_url, session_scope
from clustermass.db.urls import mask_url

__all__ = ["get_engine", "resolve_url", "session_scope", "mask_url"]
