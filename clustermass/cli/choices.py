"""The fixed value sets of command-line options, as choices: any other value is a usage error (exit 2).

Written out here (not imported from the modules that define them) so that parsing and `--help`
load no heavy library; tests/test_exit_codes.py checks each against its library constant.
"""

from __future__ import annotations

from typing import Literal

#: Where a network runs (`--device`).
Device = Literal["cpu", "cuda"]
#: Image sources (`--source`; pipeline.sources.SOURCES).
Source = Literal["mock", "local", "sas"]
#: Training stages (`cmcat train --stage`).
Stage = Literal["1", "2", "all"]
#: Export formats (`cmcat export --format`; results.export.FORMATS).
Format = Literal["parquet", "hats", "fits", "csv"]
#: Mock universe variants (`cmcat mock universe --variant`; mock.relations.VARIANTS).
Variant = Literal["default", "control"]
#: Units of mass columns (`--mass-unit`; catalogs.readers.MASS_UNITS).
MassUnit = Literal["1e14msun", "1e15msun", "msun", "log10msun"]
#: Measurement methods of masses (`cmcat ingest table --method`; catalogs.readers.METHODS).
Method = Literal["xray", "sz", "wl", "other"]
