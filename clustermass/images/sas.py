"""SDSS Science Archive Server (SAS) over HTTP: a robust frame client with a local cache.

- Retries timeouts, connection errors, 5xx, 408 and 429 with exponential backoff and jitter
  (`sdss_backoff` * 2**attempt * U(0.5, 1.5)); a Retry-After header sets the wait instead.
- Every download is checked (complete body, bz2 stream, FITS image + TAN WCS) before it is
  cached; a corrupt body is kept under `{cache}/quarantine/` next to a `.error` text file and
  the download is retried. A cached file that no longer decodes is quarantined and refetched.
- The cache is keyed by the SAS path and written atomically (temp file + rename), so readers
  never see half a file. Requests are rate limited per process; `sdss_concurrency` frames are
  fetched in parallel by the builder.
- Large files (the 0.5 GB window_flist) are streamed to `{cache}/{path}.partial` instead of
  held in memory; after a cut (in this run or an earlier one) the download resumes from the
  bytes on disk with an HTTP Range request, and the finished file is checked by a caller-given
  function before it is renamed into the cache.
"""

from __future__ import annotations

import email.utils
import os
import random
import re
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

import requests
from sqlalchemy import Engine

from clustermass.config import Settings
from clustermass.errors import ImageError
from clustermass.images.atomic import atomic_write
from clustermass.images.builder import FrameSource
from clustermass.images.frames import DbFieldIndex, Frame, decode_frame

MAX_RETRY_AFTER_S = 300.0
MAX_BACKOFF_S = 120.0
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
#: Bytes read from the socket and written to disk at a time when streaming a download
#: (what a connection reset in the middle of a read may lose).
CHUNK_BYTES = 1 << 18
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
T = TypeVar("T")


class _Retryable(Exception):
    """A failed attempt worth retrying; `wait` is the server's Retry-After in seconds, if any."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class RateLimiter:
    """At most `rate` acquisitions per second across threads (0 = unlimited)."""

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._sleep, self._clock = sleep, clock

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), capped; None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        secs = when.timestamp() - (time.time() if now is None else now)
    return min(max(secs, 0.0), MAX_RETRY_AFTER_S)


class SasClient:
    """FrameReader that downloads SAS frames into a local cache (see module docstring)."""

    def __init__(
        self,
        settings: Settings,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ):
        self.base_url = settings.sdss_base_url.rstrip("/")
        self.cache_dir = Path(settings.cache_dir)
        self.timeout = settings.sdss_timeout
        self.retries = max(0, settings.sdss_retries)
        self.backoff = settings.sdss_backoff
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._limiter = RateLimiter(settings.sdss_rate_limit, sleep=sleep)
        self._local = threading.local()

    # -- paths ---------------------------------------------------------------------------------
    def url(self, relpath: str) -> str:
        return f"{self.base_url}/{_clean(relpath)}"

    def cache_path(self, relpath: str) -> Path:
        return self.cache_dir / _clean(relpath)

    def quarantine_path(self, relpath: str) -> Path:
        return self.cache_dir / "quarantine" / _clean(relpath)

    # -- reading -------------------------------------------------------------------------------
    def read(self, relpath: str) -> Frame:
        """The decoded frame, from the cache or downloaded (ImageError after all retries fail)."""
        path = self.cache_path(relpath)
        if path.exists():
            raw = path.read_bytes()
            try:
                return decode_frame(raw, str(path))
            except ImageError as exc:  # the cached copy went bad: set it aside, fetch again
                self._quarantine(relpath, raw, exc)
                path.unlink(missing_ok=True)
        return self._download(relpath)

    def _download(self, relpath: str) -> Frame:
        url = self.url(relpath)

        def attempt() -> Frame:
            raw = self._get(url)
            try:
                frame = decode_frame(raw, url)
            except ImageError as exc:
                self._quarantine(relpath, raw, exc)
                raise _Retryable(str(exc)) from None
            atomic_write(self.cache_path(relpath), raw)
            return frame

        return self._retrying(url, attempt)

    def download(
        self,
        relpath: str,
        check: Callable[[Path, str], None],
        on_bytes: Callable[[int, int | None], None] | None = None,
    ) -> Path:
        """The cached file at `relpath`, streamed to disk first if absent (see module docstring).

        `check(path, url)` raises ImageError when a finished download is not the expected file:
        it is then quarantined and fetched again from zero. `on_bytes(done, total)` reports
        progress (total None when the server does not say). A cached file that fails the check
        is quarantined and fetched again.
        """
        path = self.cache_path(relpath)
        if path.exists():
            try:
                check(path, str(path))
                return path
            except ImageError as exc:
                self._quarantine_file(relpath, path, exc)
        url = self.url(relpath)
        partial = path.with_name(path.name + ".partial")

        def attempt() -> Path:
            self._stream(url, partial, on_bytes)
            try:
                check(partial, url)
            except ImageError as exc:
                self._quarantine_file(relpath, partial, exc)
                raise _Retryable(str(exc)) from None
            os.replace(partial, path)
            return path

        return self._retrying(url, attempt)

    def read_range(self, relpath: str, start: int, stop: int) -> bytes:
        """Bytes [start, stop) of the file at `relpath` by one HTTP Range request (not cached)."""
        url = self.url(relpath)

        def attempt() -> bytes:
            with self._request(url, {"Range": f"bytes={start}-{stop - 1}"}, stream=True) as resp:
                if resp.status_code != 206 or _range_start(resp.headers.get("Content-Range")) != start:
                    raise ImageError(
                        f"{url}: the server did not honour the byte range {start}-{stop - 1} (HTTP "
                        f"{resp.status_code}, Content-Range {resp.headers.get('Content-Range')!r}); use another SAS mirror"
                    )
                return _body(resp)

        return self._retrying(url, attempt)

    def _retrying(self, url: str, attempt: Callable[[], T]) -> T:
        """`attempt()` until it succeeds; _Retryable failures are retried with backoff, then an ImageError."""
        last: Exception | None = None
        for n in range(self.retries + 1):
            if n:
                wait = getattr(last, "wait", None)
                self._sleep(wait if wait is not None else self._backoff(n))
            try:
                return attempt()
            except _Retryable as exc:
                last = exc
        raise ImageError(
            f"{url}: failed after {self.retries + 1} attempts; last error: {last}. "
            "Check the SAS base URL (CMCAT_SDSS_BASE_URL) and network, or raise CMCAT_SDSS_RETRIES / CMCAT_SDSS_TIMEOUT"
        )

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff * 2 ** (attempt - 1) * (0.5 + self._rng.random()), MAX_BACKOFF_S)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["User-Agent"] = "cmcat (clustermass)"
        return session

    def _request(self, url: str, headers: dict[str, str], stream: bool) -> requests.Response:
        """One GET (rate limited); _Retryable for transient failures, ImageError for permanent ones."""
        self._limiter.acquire()
        try:
            resp = self._session().get(url, headers=headers, timeout=self.timeout, stream=stream)
        except requests.Timeout as exc:
            raise _Retryable(f"timed out after {self.timeout:g} s ({type(exc).__name__})") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise _Retryable(f"connection failed or body cut short ({_short(exc)})") from None
        if resp.status_code in RETRY_STATUS:
            resp.close()
            raise _Retryable(f"HTTP {resp.status_code}", retry_after_seconds(resp.headers.get("Retry-After")))
        if resp.status_code == 404:
            resp.close()
            raise ImageError(f"{url}: HTTP 404 not found; the file does not exist at this SAS base URL")
        if resp.status_code not in (200, 206, 416):
            resp.close()
            raise ImageError(f"{url}: HTTP {resp.status_code} {resp.reason}; not retried")
        return resp

    def _get(self, url: str) -> bytes:
        """One whole-body GET; raises _Retryable for transient failures, ImageError for permanent ones."""
        with self._request(url, {}, stream=True) as resp:
            if resp.status_code != 200:
                raise ImageError(f"{url}: HTTP {resp.status_code} {resp.reason} to a plain GET; not retried")
            return _body(resp)

    def _stream(self, url: str, partial: Path, on_bytes: Callable[[int, int | None], None] | None) -> None:
        """Append the rest of `url` to `partial` (a Range request from its size); _Retryable on a cut."""
        partial.parent.mkdir(parents=True, exist_ok=True)
        have = partial.stat().st_size if partial.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self._request(url, headers, stream=True) as resp:
            if resp.status_code == 416:  # nothing past `have`: the partial file is whole (the check decides)
                return
            if resp.status_code == 206 and _range_start(resp.headers.get("Content-Range")) != have:
                raise _Retryable(f"the server answered another byte range ({resp.headers.get('Content-Range')!r}) "
                                 f"than the one asked for (from {have})")
            if resp.status_code == 200:
                have = 0  # a full answer (no Range support): start over
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length is not None and length.isdigit() else None
            done = have
            resp.raw.enforce_content_length = False  # hand over the bytes of a short body; compared with total below
            try:
                with open(partial, "ab" if have else "wb") as fh:
                    for chunk in resp.iter_content(CHUNK_BYTES):
                        fh.write(chunk)
                        done += len(chunk)
                        if on_bytes is not None:
                            on_bytes(done, total)
            except requests.Timeout as exc:
                raise _Retryable(f"timed out after {self.timeout:g} s at byte {done} ({type(exc).__name__}); "
                                 "the bytes so far are kept and the download resumes from there") from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                raise _Retryable(f"connection cut at byte {done} ({_short(exc)}); "
                                 "the bytes so far are kept and the download resumes from there") from None
        if total is not None and done != total:
            raise _Retryable(f"body ended at byte {done} of {total}; the download resumes from there")

    def _quarantine(self, relpath: str, raw: bytes, exc: Exception) -> None:
        """Keep a bad file and the reason next to it for inspection (never read back as a frame)."""
        target = self.quarantine_path(relpath)
        atomic_write(target, raw)
        atomic_write(target.with_name(target.name + ".error"), f"{exc}\n".encode())

    def _quarantine_file(self, relpath: str, path: Path, exc: Exception) -> None:
        """Move a bad file on disk (too big to hold in memory) to the quarantine, with the reason."""
        target = self.quarantine_path(relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        atomic_write(target.with_name(target.name + ".error"), f"{exc}\n".encode())


class SasSource(FrameSource):
    """Cutouts from SAS frames over HTTP (cached), frames located through the `fields` table."""

    def __init__(self, settings: Settings, engine: Engine, client: SasClient | None = None, method: str = "auto"):
        super().__init__(
            "sas", client or SasClient(settings), DbFieldIndex(engine), max(1, settings.sdss_concurrency), method
        )


def _clean(relpath: str) -> str:
    parts = [p for p in str(relpath).replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ImageError(f"frame path {relpath!r} may not contain '..'")
    return "/".join(parts)


def _body(resp: requests.Response) -> bytes:
    """The whole body of a streamed response; _Retryable if the connection drops or it is short."""
    try:
        body = resp.content
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise _Retryable(f"connection failed or body cut short ({_short(exc)})") from None
    except requests.Timeout as exc:
        raise _Retryable(f"timed out reading the body ({type(exc).__name__})") from None
    expected = resp.headers.get("Content-Length")
    if expected is not None and expected.isdigit() and int(expected) != len(body):
        raise _Retryable(f"body has {len(body)} bytes, Content-Length says {expected}")
    return body


def _range_start(content_range: str | None) -> int | None:
    """First byte of a `Content-Range: bytes START-END/TOTAL` header, None if absent or malformed."""
    m = _CONTENT_RANGE.fullmatch((content_range or "").strip())
    return int(m.group(1)) if m else None


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."
