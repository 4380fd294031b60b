"""Sessions survive a server restart, expire when idle, and never store the cookie."""

from __future__ import annotations

from pathlib import Path

from server.auth import SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_survive_a_restart_and_store_only_digests(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    clock = Clock()
    first = SessionStore(idle_s=60, path=path, clock=clock)
    token, session = first.create("ann")
    assert token not in path.read_text() and "ann" in path.read_text()
    assert path.stat().st_mode & 0o077 == 0  # readable by the server's user only
    again = SessionStore(idle_s=60, path=path, clock=clock)  # a new process
    restored = again.get(token)
    assert restored is not None and restored.username == "ann"
    assert restored.csrf == session.csrf
    again.drop(token)
    assert SessionStore(idle_s=60, path=path, clock=clock).get(token) is None


def test_idle_sessions_expire_also_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    clock = Clock()
    token, _ = SessionStore(idle_s=60, path=path, clock=clock).create("bob")
    clock.now += 61
    assert SessionStore(idle_s=60, path=path, clock=clock).get(token) is None


def test_a_broken_session_file_logs_everyone_out_but_starts(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    path.write_text("{not json")
    store = SessionStore(idle_s=60, path=path)
    token, _ = store.create("cy")
    assert store.get(token) is not None
