"""Process set-up of cmcat and its Dask workers: allocator tuning, torch threads, settings
rebuilt from plain data. Light to import: the console script tunes the allocator at start-up.

Allocator: batched forward passes allocate and free many large (> 128 KiB) tensors. glibc serves those
with mmap/munmap unless its dynamic mmap threshold has grown, and Dask's nanny sets
MALLOC_TRIM_THRESHOLD_ in every worker's environment, which turns that dynamic threshold off:
each tensor then costs fresh page faults, and the forward passes ran at half speed inside
`cmcat predict` workers (measured: 13 vs 24 clusters/s per thread). Raising the mmap and trim
thresholds keeps freed memory in the heap for reuse (measured: 37 clusters/s per thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import os
import sys
from typing import Any

from clustermass.config import Settings, load_settings

#: glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Allocations above this still get their own mmap (glibc's maximum is 32 MiB on 64-bit).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap kept for reuse instead of being returned to the OS.
TRIM_THRESHOLD = 256 << 20


@functools.lru_cache(maxsize=1)
def tune_for_tensors() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: nothing to tune
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Settings as plain JSON-able data for tile tasks (no database URL: workers get it resolved)."""
    out = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name != "database_url" and value is not None:
            out[f.name] = str(value) if not isinstance(value, (int, float, str)) else value
    return out


def task_settings(settings: dict[str, Any], db_url: str) -> Settings:
    """The Settings of a tile task, rebuilt from `worker_settings` data and the resolved URL
    (the worker's own environment is ignored, so every worker computes the same thing)."""
    return load_settings(overrides={**settings, "database_url": db_url}, environ={})


def torch_threads_for(scheduler: str | None, workers: int) -> int | None:
    """Torch threads per worker of a local cluster (its CPUs shared out); None on a remote scheduler."""
    return None if scheduler else max(1, (os.cpu_count() or 1) // workers)


def setup_worker(torch_threads: int | None) -> None:
    """Per-process set-up of a tile task that runs a network: allocator tuning, torch threads."""
    tune_for_tensors()
    if torch_threads:
        import torch

        torch.set_num_threads(int(torch_threads))
