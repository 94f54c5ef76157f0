"""bench/'s smoke run: every row measured on both servers, the report and the chart written.

The numbers of a one-second run on a machine busy with other tests mean nothing; what
is checked is that the harness runs end to end, and that every row's requests got the
answers that row expects (so a broken row cannot hide behind a fast number).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from tests.support import MYSQL_SERVER_URL, RUN_ID, MariaDB

REPO = Path(__file__).resolve().parents[2]
ROWS = ["a", "b", "c", "d", "db", "e", "f", "g", "h", "reg", "rot"]
KEY_ROWS = ["a", "b", "c", "d", "db"]
# The answers each row expects besides 2xx: an invalid token is 404, a port still held 409.
EXPECTED_REFUSALS = {"g", "h"}


def test_quick_run_measures_every_row_and_writes_the_report(
    tmp_path: Path, mariadb: MariaDB
) -> None:
    database = f"tokensvc_test_{RUN_ID}_bench"
    command = [sys.executable, "-m", "bench", "--quick", "--duration", "1"]
    command += ["--servers", "granian,gunicorn", "--database", database]
    command += ["--mysql", MYSQL_SERVER_URL, "--output", str(tmp_path)]
    try:
        run = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
        )
    finally:
        with mariadb.server.connect() as conn:
            for name in (database, f"{database}_memcached"):
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    assert run.returncode == 0, run.stderr[-3000:]

    results = json.loads((tmp_path / "results.json").read_text())
    rows = {(row["server"], row["key"]): row for row in results["rows"]}
    expected = [("granian", key) for key in ROWS] + [("granian", "c+purge"), ("granian", "c+idle")]
    expected += [("gunicorn", key) for key in KEY_ROWS]
    assert sorted(rows) == sorted(expected)
    for (_, key), row in rows.items():
        assert row["rps"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"], row
        if key not in EXPECTED_REFUSALS:
            assert row["failures"] == 0, row
    extra = results["extra"]
    assert extra["purge_rows"] == 20_000 and extra["purge_seconds"] > 0
    assert 100 < extra["redis_bytes_per_token"] < 2000
    assert extra["validate_p99_idle_sockets_ms"] > 0 and extra["idle_p99_ratio"] > 0

    report = (tmp_path / "report.md").read_text()
    assert report.startswith("| server | row |")
    assert "target c/b requests/s" in report and "target register requests/s" in report
    assert run.stdout.startswith(report.strip().splitlines()[0])
    assert (tmp_path / "benchmarks.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
