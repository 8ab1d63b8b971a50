"""The ``levqor`` command as people meet it: ``--version``, help without placeholders on flags, tables that
wrap instead of cutting names at 80 columns, and one line (never a traceback) when the database is missing
or not migrated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT
from tests.support.processes import levqor_env


def levqor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    out = levqor("--version", env=levqor_env(tmp_path, None))
    assert out.returncode == 0, out
    assert out.stdout.strip() == f"levqor {version('levqor')}"


def test_flags_show_no_value_placeholder_in_help(tmp_path: Path) -> None:
    out = levqor("agents", "list", "--help", env={**levqor_env(tmp_path, None), "COLUMNS": "100"})
    assert out.returncode == 0, out
    [json_row] = [line for line in out.stdout.splitlines() if "--json" in line]
    [org_row] = [line for line in out.stdout.splitlines() if "--org" in line]
    assert "BOOL" not in json_row.upper()  # a flag takes no value: no placeholder
    assert "TEXT" in org_row  # options that take a value keep theirs
    assert "Print JSON instead of a table." in out.stdout


def test_tables_keep_every_name_whole_at_80_columns(tmp_path: Path) -> None:
    out = levqor("tools", "list", env={**levqor_env(tmp_path, None), "COLUMNS": "80"})
    assert out.returncode == 0, out
    assert "…" not in out.stdout
    assert max(len(line) for line in out.stdout.splitlines()) <= 80
    names = [t["name"] for t in json.loads(levqor("tools", "list", "--json", env=levqor_env(tmp_path, None)).stdout)]
    first_cells = {line.split("│")[1].strip() for line in out.stdout.splitlines() if line.startswith("│")}
    assert len(names) > 20
    for name in names:
        assert name in first_cells, name


def test_a_database_not_migrated_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    out = levqor("keys", "list", env=levqor_env(tmp_path, None))
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "run `levqor migrate`" in out.stderr


def test_an_unreachable_database_server_is_one_line(tmp_path: Path) -> None:
    out = levqor("keys", "list", env=levqor_env(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/nothing"))
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr and out.stderr.strip().count("\n") == 0, out.stderr
    assert "is the database server running?" in out.stderr
    # a one-shot command's failure is no platform outage: nothing noted for the monitor's db_outage rule
    assert not list(tmp_path.glob("db-outages/*")), list(tmp_path.glob("db-outages/*"))


def test_a_path_that_cannot_be_written_is_one_line_with_its_absolute_path(tmp_path: Path) -> None:
    out = levqor("docs", "api-reference", "--out", "missing/dir/api.md",
                 env={**levqor_env(tmp_path, None), "COLUMNS": "200"})
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr and out.stderr.strip().count("\n") == 0, out.stderr
    assert out.stderr.strip() == f"levqor: No such file or directory: {ROOT / 'missing' / 'dir' / 'api.md'}"
