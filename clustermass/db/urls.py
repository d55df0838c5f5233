"""Database URL helpers; the password never leaves this module unmasked in messages."""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_PW_RE = re.compile(r"(://[^:/@]+:)([^@]*)(@)")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, safe for logs, errors and output."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PW_RE.sub(r"\1***\3", url)


def scrub(text: str, url: str | None) -> str:
    """Remove the password of `url` (and any URL-embedded password) from an error text."""
    if url:
        try:
            pw = make_url(url).password
        except ArgumentError:
            pw = None
        if pw:
            text = text.replace(str(pw), "***")
    return _PW_RE.sub(r"\1***\3", text)


def normalise_url(url: str) -> str:
    """Accept postgres:// and postgresql:// URLs and use the psycopg2 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url
