"""Database URLs: what users give (a URL or a libpq key=value string) becomes one canonical
SQLAlchemy URL, and its password never leaves this module unmasked in messages or output.

Parsing uses the field libraries: urllib for the URL's user info (the last '@' ends it, as in
RFC 3986, so an unencoded '@' in a password stays in the password), SQLAlchemy's `make_url` for
the rest and libpq's own parser (`psycopg2.extensions.parse_dsn`) for key=value strings.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, unquote, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from clustermass.errors import ConfigError

DRIVER = "postgresql+psycopg2"
#: URL schemes accepted for PostgreSQL through psycopg2 (the driver cmcat's COPY paths need).
SCHEMES = ("postgresql", "postgres", DRIVER)
MASK = "***"
#: libpq parameters that hold secrets, masked wherever they appear in a URL's query.
SECRET_KEYS = ("password", "sslpassword")
EXAMPLE = "postgresql://user:password@host:5432/dbname"
# Free text can hold any URL or key=value string: these catch the passwords of ones not given.
_URL_PW_RE = re.compile(r"(://[^:/@\s]*:)(\S*)(@)")
_KV_PW_RE = re.compile(r"""((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&,;)]+)""", re.IGNORECASE)


def _unparseable() -> ConfigError:
    # The text itself is not shown: where it cannot be parsed, its password cannot be found.
    return ConfigError(
        "the database URL (CMCAT_DATABASE_URL, --database-url or database_url in the config file) cannot be "
        f"parsed; write it as {EXAMPLE} (percent-encode '/', '?', '#' and '%' in the password) "
        "or as libpq key=value pairs"
    )


def _split(raw: str) -> URL:
    """The URL of `raw` as written (any scheme), user info split at its last '@'."""
    text = raw.strip()
    if "://" not in text:
        return _from_dsn(text)
    try:
        parts = urlsplit(text)
        url = make_url(f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
                       + (f"?{parts.query}" if parts.query else ""))
    except (ValueError, ArgumentError):
        raise _unparseable() from None
    user, password = parts.username, parts.password
    return url.set(username=unquote(user) if user is not None else None,
                   password=unquote(password) if password is not None else None)


def _from_dsn(text: str) -> URL:
    """The URL of a libpq key=value string (password, host, port and the rest in its query)."""
    from psycopg2 import ProgrammingError
    from psycopg2.extensions import parse_dsn

    try:
        params = parse_dsn(text)
    except ProgrammingError:
        raise _unparseable() from None
    user, dbname = params.pop("user", None), params.pop("dbname", None)
    return URL.create(DRIVER, username=user, database=dbname, query=params)


def parse_url(raw: str) -> URL:
    """The canonical URL (psycopg2 driver, password in its own field) of a PostgreSQL URL or
    libpq key=value string; ConfigError, with the password masked, for anything else."""
    url = _split(raw)
    if url.drivername.lower() not in SCHEMES:
        raise ConfigError(
            f"database URL {mask_url(raw)}: only PostgreSQL URLs are supported ({EXAMPLE}, "
            f"scheme one of {', '.join(SCHEMES)})"
        )
    url = url.set(drivername=DRIVER)
    if "password" in url.query and url.username is not None:  # a URL renders a password only after a user
        given = url.query["password"]
        url = url.difference_update_query(["password"]).set(password=given[-1] if isinstance(given, tuple) else given)
    return url


def normalise_url(url: str) -> str:
    """The canonical URL of `url` as a string SQLAlchemy, psycopg2 and worker processes accept."""
    return parse_url(url).render_as_string(hide_password=False)


def mask_url(url: str) -> str:
    """The URL with its password (and other secrets) replaced by ***, safe for logs, errors and output."""
    try:
        parsed = _split(url)
    except ConfigError:
        return "(unparseable database URL)"
    secrets = {k: MASK for k in SECRET_KEYS if k in parsed.query}
    return parsed.update_query_dict(secrets).render_as_string(hide_password=True).replace(quote(MASK, safe=""), MASK)


def _query_secrets(url: URL) -> list[str]:
    """Values of the secret parameters in a URL's query (a parameter may be given twice)."""
    values = [url.query.get(k) for k in SECRET_KEYS]
    return [v for value in values if value for v in ((value,) if isinstance(value, str) else value)]


def scrub(text: str, url: str | None) -> str:
    """`text` without the secrets of `url` nor any password written in a URL or key=value string."""
    if url:
        try:
            parsed = _split(url)
        except ConfigError:
            parsed = None
        if parsed is not None:
            for secret in filter(None, [parsed.password, *_query_secrets(parsed)]):
                for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                    text = text.replace(form, MASK)
    text = _URL_PW_RE.sub(rf"\1{MASK}\3", text)
    return _KV_PW_RE.sub(rf"\1{MASK}", text)
