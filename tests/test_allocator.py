"""Allocator tuning: large buffers are reused instead of being mapped afresh (Dask's environment)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
import numpy as np
from clustermass.pipeline.worker import tune_for_tensors
if sys.argv[1] == "tuned":
    assert tune_for_tensors()
np.ones(1 << 20)  # warm-up
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    a = np.ones(1 << 20)  # 8 MiB, allocated and freed again
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> int:
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}  # what a Dask nanny gives its workers
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt only")
def test_tuned_allocator_reuses_large_buffers():
    plain, tuned = _page_faults("plain"), _page_faults("tuned")
    assert plain > 100 * 100  # each of the 100 buffers faulted in afresh (the slow path in workers)
    assert tuned < 100 * 10  # buffers reused from the heap
