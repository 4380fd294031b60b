"""The caller's side of the delay stage (``tests.netlab.stage``): start it, tell it what to do.

The stage is a separate process, driven by JSON lines on its stdin; see ``stage``
for why. It is started in a session of its own, so a Ctrl-C meant for the caller
does not kill it before the caller has cleaned up; it exits when its stdin closes,
which also happens when the caller dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Final

_REPO: Final = Path(__file__).resolve().parents[2]


class DelayStage:
    """The caller's handle on a running stage process (thread-safe requests)."""

    def __init__(self) -> None:
        path = [str(_REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.netlab.stage"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=_REPO,
            start_new_session=True,  # a Ctrl-C for the caller is not for the stage
        )
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def request(self, timeout_s: float = 10.0, **message: Any) -> dict[str, Any]:
        with self._lock:
            stdin: IO[bytes] | None = self._proc.stdin
            stdout: IO[bytes] | None = self._proc.stdout
            if stdin is None or stdout is None or self._proc.poll() is not None:
                raise RuntimeError(f"delay stage is not running (exit {self._proc.returncode})")
            stdin.write(json.dumps(message).encode() + b"\n")
            stdin.flush()
            ready, _, _ = select.select([stdout], [], [], timeout_s)
            if not ready:
                raise RuntimeError(f"delay stage did not answer {message} in {timeout_s} s")
            line = stdout.readline()
        if not line:
            raise RuntimeError(f"delay stage exited (code {self._proc.wait()}) on {message}")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"delay stage refused {message}: {reply.get('error')}")
        return reply

    def bind(self, key: str, netns_path: str, queue: int) -> None:
        self.request(op="bind", key=key, netns=netns_path, queue=queue)

    def set_delay(self, key: str, delay_ms: float, jitter_ms: float = 0.0) -> None:
        self.request(op="delay", key=key, delay_ms=delay_ms, jitter_ms=jitter_ms)

    def stats(self) -> dict[str, Any]:
        lines: dict[str, Any] = self.request(op="stats")["lines"]
        return lines

    def close(self, timeout_s: float = 5.0) -> None:
        """EOF on stdin: the stage releases what it holds and exits."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
