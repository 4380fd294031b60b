"""Namespaces and the commands that build them, and the sweep that removes leftovers.

Every name a testbed makes starts with a prefix that carries the owning process id,
``nl<pid base 36>_<n>-`` (``nl2ihmo_0-server``, interface ``nl2ihmo_0-1s``), short
enough for the 15-character interface names. A later run can then tell a crashed
run's namespaces (owner gone) from those of a run still going (owner alive), and
remove only the former. A reused pid would make a leftover look alive; it is then
removed by the run after.

Removing a namespace means first killing what runs inside it: a process in a
namespace keeps it alive (with its veths) after ``ip netns del`` has removed its name.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from tests.netlab.nfqueue import inside_netns

_LOGGER = logging.getLogger(__name__)

NETNS_DIR: Final = "/run/netns"
REQUIRED_TOOLS: Final = ("ip", "tc", "iptables", "iptables-restore", "ethtool")
_PREFIX_RE: Final = re.compile(r"^nl([0-9a-z]+)_([0-9a-z]+)-")
_DIGITS: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
_counter = itertools.count()


class NetlabUnavailable(RuntimeError):
    """This machine cannot host a testbed (not root, or a tool is missing)."""


class CommandFailed(RuntimeError):
    """An ``ip``/``tc``/``iptables`` command refused; the message carries its stderr."""


def check_host() -> None:
    """Fail loudly (never skip) when a testbed cannot be built here."""
    if os.geteuid() != 0:
        raise NetlabUnavailable(
            "the link testbed needs root (network namespaces, tc, iptables); "
            "run the netlab tests and bench/links.py as root, as CI does"
        )
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise NetlabUnavailable(
            f"the link testbed needs {', '.join(missing)}: "
            "apt-get install iproute2 iptables ethtool (./install.sh --role dev installs them)"
        )


def _base36(value: int) -> str:
    digits = ""
    while True:
        value, rest = divmod(value, 36)
        digits = _DIGITS[rest] + digits
        if not value:
            return digits


def new_prefix() -> str:
    """A prefix unique to this process and testbed, e.g. ``nl2ihmo_0-``."""
    return f"nl{_base36(os.getpid())}_{_base36(next(_counter))}-"


def owner_pid(name: str) -> int | None:
    """The pid encoded in a testbed name, or None if the name is not one of ours."""
    match = _PREFIX_RE.match(name)
    return int(match.group(1), 36) if match else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run a command; a failure raises ``CommandFailed`` naming the command and its stderr."""
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


def netns_path(netns: str) -> str:
    return f"{NETNS_DIR}/{netns}"


def write_sysctls(netns: str, values: dict[str, str]) -> None:
    """Set ``net.*`` sysctls of a namespace: /proc/sys/net follows the writer's namespace.

    Written from this thread after ``setns`` (no ``sysctl`` binary: procps is not in
    every CI image).
    """
    with inside_netns(netns_path(netns)):
        for key, value in values.items():
            Path("/proc/sys", *key.split(".")).write_text(value)


def list_netns() -> list[str]:
    """Names from ``ip netns list`` (lines like ``name (id: 3)``)."""
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()]


def root_links() -> list[str]:
    """Interface names in the caller's namespace (``ip -o link``: ``7: name@peer: <…>``)."""
    names = []
    for line in run(["ip", "-o", "link", "show"]).splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def netns_pids(netns: str) -> list[int]:
    out = run(["ip", "netns", "pids", netns], check=False)
    return [int(tok) for tok in out.split() if tok.isdigit()]


def _kill_all(pids: list[int], grace_s: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [pid for pid in pids if pid_alive(pid)]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while alive and time.monotonic() < deadline:
            time.sleep(0.02)
            alive = [pid for pid in alive if pid_alive(pid)]
        if not alive:
            return


def destroy_netns(netns: str, *, grace_s: float = 1.0) -> None:
    """Kill every process inside, then remove the namespace (its veths go with it)."""
    _kill_all(netns_pids(netns), grace_s)
    run(["ip", "netns", "del", netns], check=False)


def destroy_prefix(prefix: str) -> None:
    """Remove every namespace and root-namespace interface whose name starts with ``prefix``."""
    for netns in list_netns():
        if netns.startswith(prefix):
            destroy_netns(netns)
    for link in root_links():
        if link.startswith(prefix):
            run(["ip", "link", "del", link], check=False)


def sweep_stale() -> list[str]:
    """Remove what testbeds of dead processes left behind; return the prefixes removed."""
    stale: set[str] = set()
    for name in [*list_netns(), *root_links()]:
        match = _PREFIX_RE.match(name)
        if match and not pid_alive(int(match.group(1), 36)):
            stale.add(match.group(0))
    for prefix in sorted(stale):
        _LOGGER.warning("removing the leftovers of a crashed netlab run: %s*", prefix)
        destroy_prefix(prefix)
    return sorted(stale)
