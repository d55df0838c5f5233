"""Fault-injection helpers for the reliability and security tests (importable by Dask workers)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
from sqlalchemy import Engine, text


def task_quoting_url(db_url, run_id, norder, npix, **_):
    """A tile task that fails with the database URL in its message (as some driver errors do)."""
    raise RuntimeError(f"could not use {db_url}")


def wait_for(engine: Engine, sql: str, at_least: int, timeout_s: float = 120.0, proc=None) -> int:
    """Poll `sql` (a count) until it reaches `at_least`; return the last value (or on timeout/exit)."""
    deadline = time.monotonic() + timeout_s
    value = 0
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        with engine.connect() as conn:
            value = conn.execute(text(sql)).scalar_one()
        if value >= at_least:
            break
        time.sleep(0.05)
    return value


def dask_worker_pids(parent_pid: int) -> list[int]:
    """Pids of the Dask worker processes under `parent_pid` (processes spawned by its nannies)."""
    out = []
    for p in psutil.Process(parent_pid).children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "multiprocessing" in cmd and "resource_tracker" not in cmd and "forkserver" not in cmd:
            out.append(p.pid)
    return out


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
