"""Bad options and odd input paths through the real console script: each gives one `error:` line
naming the problem (exit code 1), creates nothing and leaves the database unchanged.

Complements tests/test_bad_input.py (malformed catalogue contents live there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from test_ingest import one_error_line, run_cmcat, short_redmapper, snapshot

WIDE = 300_000  # columns in a header of ~3.6 MB


def _all_rows_bad(tmp_path: Path) -> list[str]:
    short_redmapper(tmp_path / "rm.csv", n=3, RA=400.0)
    return ["ingest", "redmapper", str(tmp_path / "rm.csv"), "--skip-bad"]


def _symlink_loop(tmp_path: Path) -> list[str]:
    (tmp_path / "loop.csv").symlink_to(tmp_path / "loop.csv")
    return ["ingest", "redmapper", str(tmp_path / "loop.csv")]


def _folder(tmp_path: Path) -> list[str]:
    (tmp_path / "rm.csv").mkdir()
    return ["ingest", "redmapper", str(tmp_path / "rm.csv")]


def _wide_header(tmp_path: Path) -> list[str]:
    names = [f"col{i:06d}" for i in range(WIDE)]
    (tmp_path / "wide.csv").write_text(",".join(names) + "\n" + ",".join("1" * WIDE) + "\n")
    return ["ingest", "redmapper", str(tmp_path / "wide.csv")]


# case -> (command line from tmp_path, database URL (None: the test database), words the line must hold)
CASES: dict[str, tuple[Callable[[Path], list[str]], str | None, list[str]]] = {
    "skip_bad_every_row_bad": (_all_rows_bad, None, ["rm.csv: all 3 rows are invalid", "RA outside",
                                                     "Nothing was loaded"]),
    "symlink_loop": (_symlink_loop, None, ["loop.csv: a symbolic link loop"]),
    "folder": (_folder, None, ["rm.csv: a folder, not a catalogue file"]),
    "dev_null": (lambda _: ["ingest", "redmapper", "/dev/null"], None, ["/dev/null: not a regular file"]),
    "wide_header": (_wide_header, None, ["missing required column", "'col000007'] ... and 299992 more"]),
    "mysql_url": (lambda _: ["db", "status"], "mysql://ann:S3cret@db.example/x",
                  ["only PostgreSQL URLs are supported", "mysql://ann:***@db.example/x"]),
    "unparseable_url": (lambda _: ["db", "status"], "[::1:1", ["database URL", "cannot be parsed"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_option_one_clear_line_nothing_created(db, pg_url, tmp_path, case):
    command, url, expected = CASES[case]
    args = command(tmp_path)
    before = snapshot(db)
    line = one_error_line(run_cmcat(url or pg_url, tmp_path / "data", *args))
    for part in expected:
        assert part in line, (part, line[:2000])
    assert len(line) < 1000 and "S3cret" not in line, line[:2000]
    assert snapshot(db) == before
    assert not list(tmp_path.rglob("*.rejected.csv"))
