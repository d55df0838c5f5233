"""SDSS's field index, window_flist.fits (the PHOTO_RESOLVE file), fetched from the SAS.

One row per imaging field (about 0.5 GB for DR12): RUN, RERUN, CAMCOL, FIELD, the field centre
RA/DEC, the stripe's NODE/INCL with the field's MU/NU bounds, SCORE (1 for the best, "primary"
observation of a patch of sky) and per-band PSF_FWHM, SKYFLUX and status bits. Its path under
the SAS base URL is the setting `sdss_window_flist_path`.

Before the long download the table header and first row are read with HTTP Range requests, so
a wrong path or a file of another layout fails in a second, not after 0.5 GB. The download is
streamed to disk, resumes after a cut and is checked as a whole FITS table before it enters the
cache (clustermass.images.sas.SasClient.download).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Callable

from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning

from clustermass.config import Settings
from clustermass.errors import ImageError
from clustermass.images.sas import SasClient

#: Columns cmcat reads from window_flist (clustermass.catalogs.readers.FIELDS maps them).
REQUIRED = ("RUN", "RERUN", "CAMCOL", "FIELD", "RA", "DEC")
#: Bytes asked for at a time while looking for the end of the table's header.
HEADER_CHUNK = 10 * 2880
#: Header reads before giving up (a 2.9 MB header is not a window_flist).
MAX_HEADER_CHUNKS = 10


def check_window_flist(path: Path, name: str) -> None:
    """ImageError unless `path` is a whole FITS file whose HDU 1 is a table with the REQUIRED columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyWarning)  # astropy reports a truncated file as a warning
        try:
            with fits.open(path, memmap=True, lazy_load_hdus=False) as hdul:
                table = hdul[1] if len(hdul) > 1 else None
                names = list(table.columns.names) if isinstance(table, fits.BinTableHDU) else None
        except Exception as exc:  # noqa: BLE001 - astropy raises OSError, VerifyError, warnings... on bad files
            raise ImageError(f"{name}: not a whole FITS file ({type(exc).__name__}: {' '.join(str(exc).split())})") from None
    if names is None:
        raise ImageError(f"{name}: HDU 1 is not a binary table; not a window_flist file")
    _require_columns(names, name)


def read_head(client: SasClient, relpath: str, n_rows: int = 1) -> Table:
    """The first `n_rows` rows of the FITS table in HDU 1 of `relpath`, by HTTP Range requests only."""
    url = client.url(relpath)
    raw = b""
    for _ in range(MAX_HEADER_CHUNKS):
        more = client.read_range(relpath, len(raw), len(raw) + HEADER_CHUNK)
        raw += more
        if not raw.startswith(b"SIMPLE"):
            raise ImageError(f"{url}: not a FITS file (it starts with {raw[:40]!r}); check sdss_window_flist_path")
        found = _table_header(raw)
        if found is not None or len(more) < HEADER_CHUNK:
            break
    if found is None:
        raise ImageError(f"{url}: no table header in HDU 1 within its first {len(raw)} bytes; not a window_flist file")
    header, data_at = found
    n = min(int(n_rows), int(header["NAXIS2"]))
    rows = client.read_range(relpath, data_at, data_at + n * int(header["NAXIS1"])) if n else b""
    header["NAXIS2"] = n
    header["PCOUNT"] = 0
    block = header.tostring().encode("ascii") + rows
    hdu = fits.BinTableHDU.fromstring(block + b"\0" * (-len(block) % 2880))
    return Table(hdu.data)


def _table_header(raw: bytes) -> tuple[fits.Header, int] | None:
    """(HDU 1 header, byte offset of its data) from the first bytes of a FITS file, None if not all there yet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)  # the bytes end early on purpose
        try:
            with fits.open(io.BytesIO(raw), lazy_load_hdus=True) as hdul:
                hdu = hdul[1]
                return hdu.header.copy(), int(hdul.fileinfo(1)["datLoc"])
        except (OSError, IndexError, ValueError, KeyError):
            return None


def _require_columns(names: list[str], where: str) -> None:
    upper = {n.upper() for n in names}
    missing = [c for c in REQUIRED if c not in upper]
    if missing:
        raise ImageError(f"{where}: the table lacks column(s) {', '.join(missing)} (it has {', '.join(names[:20])}"
                         f"{'...' if len(names) > 20 else ''}); not a window_flist file")


def fetch_window_flist(
    settings: Settings,
    client: SasClient | None = None,
    on_bytes: Callable[[int, int | None], None] | None = None,
) -> Path:
    """The cached window_flist.fits, downloaded from the SAS if absent (resumed if half there)."""
    client = client or SasClient(settings)
    relpath = settings.sdss_window_flist_path
    if not client.cache_path(relpath).exists():
        head = read_head(client, relpath, 1)
        _require_columns(head.colnames, client.url(relpath))
    return client.download(relpath, check_window_flist, on_bytes)
