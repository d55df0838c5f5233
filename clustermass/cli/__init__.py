"""The `cmcat` command line: thin Typer commands over the modules below.

Each command group lives in its own module and registers itself here.
"""

from __future__ import annotations

from clustermass.cli._common import app, main
from clustermass.cli import db as _db  # noqa: F401  (registers `cmcat db ...`)
from clustermass.cli import mock as _mock  # noqa: F401  (registers `cmcat mock ...`)
from clustermass.cli import predict as _predict  # noqa: F401  (registers `cmcat predict`)
from clustermass.cli import fetch as _fetch  # noqa: F401  (registers `cmcat fetch`)
from clustermass.cli import results as _results  # noqa: F401  (registers sql, export, plot)
from clustermass.cli import ingest as _ingest  # noqa: F401  (registers ingest, crossmatch, baseline, status)
from clustermass.cli import train as _train  # noqa: F401  (registers train, evaluate, models, learning-curve)
from clustermass.cli import explain as _explain  # noqa: F401  (registers `cmcat explain`)

__all__ = ["app", "main"]
