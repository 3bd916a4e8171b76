"""`python -m bench semantic` (bench/semantic.py) runs and reports the lookup path it measured."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.site.serve_processes import ROOT


def test_the_semantic_bench_reports_hits_from_the_lru_and_the_database() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "semantic"),
            *("--entries", "3000", "--queries", "20", "--lru-mib", "1"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| LRU", "| database"))]
    assert len(rows) == 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == "20"  # lookups
        assert float(cells[-1]) >= 0.9  # found the entry it queried
