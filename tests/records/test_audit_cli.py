"""``clinicam audit verify`` exits 0 on an intact log and 1 naming the first bad entry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import update

from server.audit import AuditEntry, AuditLog
from server.db import open_database


def _clinicam(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clinicam_app", "audit", "verify", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_passes_then_fails_after_a_direct_edit(tmp_path: Path) -> None:
    state = tmp_path / "state"
    url = f"sqlite:///{state / 'clinicam.db'}"
    database = open_database(url)
    with database.session() as session:
        for i in range(5):
            AuditLog().append(session, "dr-a", "read", f"patient:{i}", {"i": i})
        session.commit()

    ok = _clinicam("--database", url)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "audit log OK (5 entries)"

    config = tmp_path / "server.toml"
    config.write_text(f'state_dir = "{state}"\n')
    assert _clinicam("--config", str(config)).returncode == 0

    with database.session() as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(target="patient:9"))
        session.commit()
    database.close()

    broken = _clinicam("--database", url)
    assert broken.returncode == 1
    assert "seq 3" in broken.stderr and "edited" in broken.stderr
    assert _clinicam("--config", str(config)).returncode == 1


def test_cli_refuses_a_missing_database_without_creating_it(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    result = _clinicam("--database", f"sqlite:///{missing}")
    assert result.returncode == 1 and "no database" in result.stderr
    assert not missing.exists()
