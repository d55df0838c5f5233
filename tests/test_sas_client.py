"""SAS client over real loopback HTTP with injected faults: retries, Retry-After, timeouts,
truncation, corrupt bz2, connection resets, quarantine, cache and rate limit; streamed
downloads resumed with Range requests, and a FITS table's head read by Range requests."""

from __future__ import annotations

import bz2
import io
import os
import socket
import struct
import time
from email.utils import formatdate
from pathlib import Path

import numpy as np
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from clustermass.config import load_settings
from clustermass.errors import ImageError
from clustermass.images.frames import frame_relpath
from clustermass.images.sas import RateLimiter, SasClient, retry_after_seconds
from clustermass.images.window_flist import check_window_flist, read_head
from framekit import read_header, window_flist_bytes, write_frame

REL = frame_relpath("g", 756, 2, 471)


@pytest.fixture
def server():
    srv = HTTPServer(host="127.0.0.1", threaded=True)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()


@pytest.fixture(scope="module")
def real_bytes(real_data) -> bytes:
    return (real_data / "sdss_frames/stellar_classification/frame-g-000756-2-0471.fits.bz2").read_bytes()


@pytest.fixture(scope="module")
def small_bytes(real_data, tmp_path_factory) -> bytes:
    """A small valid frame (real header/WCS, 64x96 pixels): quick to decode."""
    header = read_header(real_data / "sdss_frames/stellar_classification/frame-g-000756-2-0471.fits.bz2")
    root = tmp_path_factory.mktemp("small")
    data = np.random.default_rng(0).normal(size=(64, 96)).astype(np.float32)
    return write_frame(root, "g", 756, 2, 471, data, header).read_bytes()


def make_client(server: HTTPServer, tmp_path: Path, **kw) -> tuple[SasClient, list[float]]:
    opts = {"sdss_base_url": server.url_for("/sas"), "data_dir": tmp_path, "sdss_timeout": 0.5,
            "sdss_retries": 3, "sdss_backoff": 0.01, "sdss_rate_limit": 0}
    opts.update(kw)
    sleeps: list[float] = []
    return SasClient(load_settings(overrides=opts, environ={}), sleep=sleeps.append, seed=1), sleeps


def serve_sequence(server: HTTPServer, behaviours: list) -> list[str]:
    """Serve the frame path with one behaviour per request (the last one repeats); returns a log."""
    log: list[str] = []

    def handler(request):
        step = behaviours[min(len(log), len(behaviours) - 1)]
        log.append(step.__name__ if callable(step) else "bytes")
        return step(request) if callable(step) else Response(step, content_type="application/x-bzip2")

    server.expect_request(f"/sas/{REL}").respond_with_handler(handler)
    return log


def http_500(request):
    return Response("boom", status=500)


def http_429(request):
    return Response("slow down", status=429, headers={"Retry-After": "2"})


def reset(request):
    sock = request.environ["werkzeug.socket"]
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    os.close(sock.detach())  # RST to the client
    return Response(b"")


def no_partial_files(root: Path) -> bool:
    return not any(p.name.endswith(".part") for p in root.rglob("*"))


def test_500_then_429_then_success_real_frame(server, tmp_path, real_bytes):
    log = serve_sequence(server, [http_500, http_429, real_bytes])
    client, sleeps = make_client(server, tmp_path)
    frame = client.read(REL)
    assert frame.data.shape == (1489, 2048) and frame.data.dtype == np.float32
    assert log == ["http_500", "http_429", "bytes"]
    assert 0.005 <= sleeps[0] <= 0.015  # jittered backoff around sdss_backoff
    assert sleeps[1] == 2.0  # Retry-After honoured
    assert client.cache_path(REL).read_bytes() == real_bytes
    # Cached: no further request.
    client.read(REL)
    assert len(log) == 3


def test_slow_response_times_out_then_succeeds(server, tmp_path, small_bytes):
    def slow(request):
        time.sleep(0.8)
        return Response(small_bytes)

    log = serve_sequence(server, [slow, small_bytes])
    client, sleeps = make_client(server, tmp_path, sdss_timeout=0.2)
    client.read(REL)
    assert log == ["slow", "bytes"] and len(sleeps) == 1


def test_truncated_body_and_reset_are_retried(server, tmp_path, small_bytes):
    def short_body(request):
        resp = Response(small_bytes[: len(small_bytes) // 2])
        resp.automatically_set_content_length = False
        resp.headers["Content-Length"] = str(len(small_bytes))
        return resp

    def truncated_file(request):  # a consistent response of half a file: only the bz2 check sees it
        return Response(small_bytes[: len(small_bytes) // 2])

    log = serve_sequence(server, [short_body, reset, truncated_file, small_bytes])
    client, sleeps = make_client(server, tmp_path)
    client.read(REL)
    assert log == ["short_body", "reset", "truncated_file", "bytes"]
    assert client.cache_path(REL).read_bytes() == small_bytes
    # The truncated file was quarantined with its reason.
    q = client.quarantine_path(REL)
    assert q.read_bytes() == small_bytes[: len(small_bytes) // 2]
    assert "bz2" in q.with_name(q.name + ".error").read_text()
    assert no_partial_files(tmp_path)


def test_corrupt_bz2_fails_clearly_nothing_cached(server, tmp_path, small_bytes):
    corrupt = bytearray(small_bytes)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 64] = b"\x00" * 64
    log = serve_sequence(server, [bytes(corrupt)])
    client, sleeps = make_client(server, tmp_path, sdss_retries=2)
    with pytest.raises(ImageError) as err:
        client.read(REL)
    msg = str(err.value)
    assert "failed after 3 attempts" in msg and REL in msg and "bz2" in msg
    assert len(log) == 3 and len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.6  # exponential
    assert not client.cache_path(REL).exists()
    assert client.quarantine_path(REL).exists()
    assert no_partial_files(tmp_path)


def test_not_a_fits_file_and_404(server, tmp_path):
    log = serve_sequence(server, [bz2.compress(b"<html>maintenance</html>")])
    client, _ = make_client(server, tmp_path, sdss_retries=1)
    with pytest.raises(ImageError, match="not a valid FITS"):
        client.read(REL)
    assert len(log) == 2
    missing = frame_relpath("g", 1, 1, 1)
    server.expect_request(f"/sas/{missing}").respond_with_data("no such file", status=404)
    with pytest.raises(ImageError, match="404"):
        client.read(missing)  # 404 is permanent: not retried
    assert len(server.log) == 3
    assert not client.cache_path(missing).exists()


def test_corrupt_cache_is_quarantined_and_refetched(server, tmp_path, small_bytes):
    log = serve_sequence(server, [small_bytes])
    client, _ = make_client(server, tmp_path)
    path = client.cache_path(REL)
    path.parent.mkdir(parents=True)
    path.write_bytes(small_bytes[:100])
    client.read(REL)
    assert log == ["bytes"] and path.read_bytes() == small_bytes
    assert client.quarantine_path(REL).read_bytes() == small_bytes[:100]


def test_closed_port_fails_after_retries(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave the block
    settings = load_settings(
        overrides={"sdss_base_url": f"http://127.0.0.1:{port}/sas", "data_dir": tmp_path, "sdss_retries": 2,
                   "sdss_backoff": 0.01, "sdss_timeout": 0.5, "sdss_rate_limit": 0},
        environ={},
    )
    sleeps: list[float] = []
    with pytest.raises(ImageError, match="connection failed"):
        SasClient(settings, sleep=sleeps.append).read(REL)
    assert len(sleeps) == 2


def test_rate_limiter_spaces_requests():
    sleeps: list[float] = []
    limiter = RateLimiter(10.0, sleep=sleeps.append, clock=lambda: 100.0)
    for _ in range(3):
        limiter.acquire()
    assert sleeps == pytest.approx([0.1, 0.2])
    free: list[float] = []
    unlimited = RateLimiter(0, sleep=free.append)
    unlimited.acquire()
    assert free == []


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds(formatdate(1000.0 + 30, usegmt=True), now=1000.0) == pytest.approx(30.0)
    assert retry_after_seconds("100000") == 300.0  # capped


# --------------------------------------------------------------------------- streamed downloads

WF = "dr12/boss/resolve/2010-05-23/window_flist.fits"


@pytest.fixture(scope="module")
def flist_bytes() -> bytes:
    """A window_flist in the real column layout, ~0.9 MB."""
    return window_flist_bytes([], n_filler=3000)


def serve_ranges(server: HTTPServer, data: bytes, cuts: int = 0, ranges: bool = True) -> list[tuple[str | None, int]]:
    """Serve `data` at WF, honouring Range requests (unless `ranges` is off); the first `cuts`
    answers stop half way through their body. Returns a log of (Range header, body bytes sent)."""
    log: list[tuple[str | None, int]] = []

    def handler(request):
        resp = Response(data, mimetype="application/fits")
        if ranges:
            resp = resp.make_conditional(request, accept_ranges=True, complete_length=len(data))
        body = resp.get_data()
        sent = body[: len(body) // 2] if len(log) < cuts else body
        resp.automatically_set_content_length = False
        resp.set_data(sent)
        resp.headers["Content-Length"] = str(len(body))  # promises the whole body
        log.append((request.headers.get("Range"), len(sent)))
        return resp

    server.expect_request(f"/sas/{WF}").respond_with_handler(handler)
    return log


def test_download_cut_half_way_resumes_with_a_range_request(server, tmp_path, flist_bytes):
    log = serve_ranges(server, flist_bytes, cuts=1)
    client, sleeps = make_client(server, tmp_path)
    seen: list[int] = []
    path = client.download(WF, check_window_flist, on_bytes=lambda done, total: seen.append(done))
    assert path == client.cache_path(WF) and path.read_bytes() == flist_bytes
    half = len(flist_bytes) // 2
    assert log == [(None, half), (f"bytes={half}-", len(flist_bytes) - half)]
    assert log[1][1] < len(flist_bytes) and len(sleeps) == 1  # the second request fetched only the rest
    assert seen[-1] == len(flist_bytes)
    assert not path.with_name(path.name + ".partial").exists()
    client.download(WF, check_window_flist)  # cached: no request
    assert len(log) == 2


def test_download_without_range_support_starts_over(server, tmp_path, flist_bytes):
    log = serve_ranges(server, flist_bytes, cuts=1, ranges=False)
    client, _ = make_client(server, tmp_path)
    assert client.download(WF, check_window_flist).read_bytes() == flist_bytes
    assert [sent for _, sent in log] == [len(flist_bytes) // 2, len(flist_bytes)]


def test_download_of_a_wrong_file_is_quarantined_and_retried(server, tmp_path, flist_bytes):
    page = b"<html>maintenance</html>"
    calls = []

    def handler(request):
        calls.append(request.headers.get("Range"))
        return Response(page if len(calls) == 1 else flist_bytes)

    server.expect_request(f"/sas/{WF}").respond_with_handler(handler)
    client, _ = make_client(server, tmp_path)
    assert client.download(WF, check_window_flist).read_bytes() == flist_bytes
    assert calls == [None, None]  # the bad body was set aside, not resumed from
    q = client.quarantine_path(WF)
    assert q.read_bytes() == page and "not a whole FITS file" in q.with_name(q.name + ".error").read_text()
    # a cached copy that went bad is quarantined and fetched again
    client.cache_path(WF).write_bytes(flist_bytes[:5000])
    assert client.download(WF, check_window_flist).read_bytes() == flist_bytes and len(calls) == 3


def test_read_head_reads_the_first_rows_by_range_requests_only(server, tmp_path, flist_bytes):
    from astropy.table import Table

    log = serve_ranges(server, flist_bytes)
    client, _ = make_client(server, tmp_path)
    head = read_head(client, WF, 3)
    whole = Table.read(io.BytesIO(flist_bytes), hdu=1)
    assert head.colnames == whole.colnames and len(head) == 3
    for name in ("RUN", "RERUN", "FIELD", "RA", "PSF_FWHM"):
        np.testing.assert_array_equal(head[name], whole[name][:3])
    assert all(r is not None for r, _ in log) and sum(sent for _, sent in log) < 0.1 * len(flist_bytes)
    assert not client.cache_path(WF).exists()


def test_read_head_refuses_a_server_without_ranges_and_a_non_fits_file(server, tmp_path, flist_bytes):
    serve_ranges(server, flist_bytes, ranges=False)
    client, _ = make_client(server, tmp_path)
    with pytest.raises(ImageError, match="did not honour the byte range"):
        read_head(client, WF)
    server.clear()
    serve_ranges(server, b"<html>" + b" " * 40000)
    with pytest.raises(ImageError, match="not a FITS file"):
        read_head(client, WF)
