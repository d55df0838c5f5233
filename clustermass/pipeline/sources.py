"""The one place image sources are built: names, their options, and a per-process cache.

A source is named on the command line (`--source mock | local | sas`) and travels to workers as
plain data (name + JSON-able options, stored with a run); `image_source` turns that back into
an ImageSource once per process. Everything below (model, images) takes a ready ImageSource.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from sqlalchemy import Engine

from clustermass.config import Settings
from clustermass.db.engine import engine_for_url
from clustermass.errors import InputError
from clustermass.images.base import ImageSource
from clustermass.images.frames import require_field_index
from clustermass.images.local import LocalSource
from clustermass.images.sas import SasSource
from clustermass.mock.source import MockSource
from clustermass.mock.version import MOCK_VERSION, check_universe

#: The image sources, in the order the CLI lists them.
SOURCES = ("mock", "local", "sas")


def source_options(source: str, frames: str | None, universe: str | None, seed: int) -> dict:
    """Keyword options of the image source (plain data, stored with the run)."""
    if source not in SOURCES:
        raise InputError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    if source == "local":
        if not frames:
            raise InputError("--source local needs --frames DIR (a folder in the SAS layout, e.g. from `cmcat mock frames`)")
        return {"root": os.path.abspath(frames)}
    if source == "mock":
        if universe:
            check_universe(universe)  # refuse a universe of another mock version before any work
        return {"universe_dir": os.path.abspath(universe) if universe else None, "seed": seed,
                "mock_version": MOCK_VERSION}
    return {}


def check_frames_indexed(engine: Engine, source: str) -> None:
    """Stop at once when --source sas or local would find no frame because `fields` is empty."""
    if source in ("sas", "local"):
        require_field_index(engine)


def make_source(engine: Engine, settings: Settings, source: str, options: dict) -> ImageSource:
    """The ImageSource named `source` ('mock' | 'local' | 'sas') with its keyword options."""
    if source == "mock":
        return MockSource(**options)
    if source == "local":
        return LocalSource(Path(options["root"]), engine)
    if source == "sas":
        return SasSource(settings, engine)
    raise InputError(f"unknown image source {source!r}; use {', '.join(SOURCES)}")


@functools.lru_cache(maxsize=4)
def _cached(name: str, db_url: str, settings: Settings, options_json: str) -> ImageSource:
    return make_source(engine_for_url(db_url), settings, name, json.loads(options_json))


def image_source(name: str, db_url: str, settings: Settings, options: dict | None) -> ImageSource:
    """The ImageSource `name` with `options`, built once per process (workers reuse it across tiles)."""
    return _cached(name, db_url, settings, json.dumps(dict(options or {}), sort_keys=True))
