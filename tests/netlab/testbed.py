"""A hub-and-spoke network of namespaces whose links behave like rural connections.

``server`` is the hub; each leaf (``clinic``, ``experts``, or any names given) has a
veth pair of its own to it, subnet ``10.77.<i>.0/24`` (server end ``.1``, leaf end
``.2``, default route through the server, which forwards between leaves). The server
also answers on ``10.77.0.1`` from every leaf, over that leaf's own link, so a test
can give every party one server address.

Each leaf's link is shaped per direction and can be re-shaped while traffic flows
(see ``shaping`` for where rate, loss and delay sit and why). Offloads (TSO, GSO,
GRO) are off on every veth: otherwise TCP hands 64 kB super-packets to the stages,
and one "lost packet" would be forty. IPv6 is off on the veths (``lo`` keeps ::1):
the loss and delay rules are IPv4 iptables, and IPv6 would cross the link unshaped.

Everything is removed on ``close()``: at the end of a ``with`` block, on an exception,
at interpreter exit (atexit) and on SIGTERM. A run killed harder than that leaves
namespaces behind; the next testbed sweeps them (``netns.sweep_stale``).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any, Final

from tests.netlab import netns as ns
from tests.netlab.delay import DelayStage
from tests.netlab.profiles import DEFAULT_OUTAGE_S, LAN, LinkProfile
from tests.netlab.shaping import Direction, chain_rules, hook_rule, restore_script, tbf_args

_LOGGER = logging.getLogger(__name__)

SERVER: Final = "server"
SERVER_ADDRESS: Final = "10.77.0.1"
_LEAF_RE: Final = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_OFFLOADS: Final = ("tso", "gso", "gro", "tx-udp-segmentation")


@dataclass
class _Link:
    leaf: str
    index: int
    up: Direction
    down: Direction
    shape: dict[str, LinkProfile] = field(default_factory=lambda: {"up": LAN, "down": LAN})
    outages: int = 0
    applied: dict[str, tuple[Any, ...]] = field(default_factory=dict)


class Outage:
    """A running outage: 100 % loss both ways on one link until ``seconds`` have passed."""

    def __init__(self, testbed: Testbed, leaf: str, seconds: float) -> None:
        self.leaf = leaf
        self.seconds = seconds
        self.started_at = 0.0  # monotonic time the DROP rules were in place
        self._testbed = testbed
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def _start(self) -> None:
        self.started_at = time.monotonic()
        self._timer = threading.Timer(self.seconds, self.end)
        self._timer.daemon = True
        self._timer.start()

    def _abandon(self) -> None:
        """The testbed is closing: no restore, but nobody waits forever."""
        if self._timer is not None:
            self._timer.cancel()
        self._done.set()

    @property
    def active(self) -> bool:
        return not self._done.is_set()

    def end(self) -> None:
        """End now (or do nothing if over): the link goes back to its profile."""
        with self._lock:
            if self._done.is_set():
                return
            if self._timer is not None:
                self._timer.cancel()
            try:
                self._testbed._end_outage(self)
            except Exception:  # the testbed may be closing under us
                _LOGGER.exception("could not end the outage on %s", self.leaf)
            finally:
                self._done.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the link is back; True if it is."""
        return self._done.wait(timeout_s)


class Testbed:
    """Namespaces for a server and its leaves, joined by shaped veth links (needs root).

    >>> with Testbed(leaves=["clinic", "expert1"]) as bed:  # doctest: +SKIP
    ...     bed.shape("clinic", PROFILES["3g"])
    ...     server = bed.popen("server", ["python", "-m", "http.server", "8000"])
    ...     bed.run("clinic", ["curl", f"http://{bed.address('server')}:8000/"])
    ...     bed.outage("clinic", 5).wait()
    """

    __test__ = False  # a test bed, not a pytest test class

    def __init__(self, leaves: Sequence[str] = ("clinic", "experts")) -> None:
        if not leaves:
            raise ValueError("a testbed needs at least one leaf")
        for leaf in leaves:
            if leaf == SERVER or not _LEAF_RE.match(leaf):
                raise ValueError(
                    f"leaf name {leaf!r}: lower-case letters, digits, '-'; not 'server'"
                )
        if len(set(leaves)) != len(leaves):
            raise ValueError(f"leaf names repeat: {list(leaves)}")
        if len(leaves) > 250:
            raise ValueError("at most 250 leaves (one /24 each under 10.77/16)")
        self.leaves: tuple[str, ...] = tuple(leaves)
        self.prefix = ns.new_prefix()
        self._links: dict[str, _Link] = {}
        self._procs: list[subprocess.Popen[Any]] = []
        self._outages: list[Outage] = []
        self._stage: DelayStage | None = None
        self._lock = threading.RLock()
        self._started = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Testbed:
        """Check the host, sweep a crashed run's leftovers, build the network."""
        ns.check_host()
        ns.sweep_stale()
        _register(self)
        self._started = True
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop processes, release held packets, remove namespaces (idempotent)."""
        if self._closed or not self._started:
            return
        self._closed = True
        for outage in list(self._outages):
            outage._abandon()
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._stage is not None:
            self._stage.close()  # closes its sockets: they too keep a namespace alive
        ns.destroy_prefix(self.prefix)
        _unregister(self)

    # -- names and addresses ---------------------------------------------------------

    def netns(self, party: str) -> str:
        """The namespace name of ``server`` or a leaf (for ``ip netns exec``)."""
        if party != SERVER and party not in self.leaves:
            raise KeyError(f"no party {party!r} in this testbed (server, {', '.join(self.leaves)})")
        return f"{self.prefix}{party}"

    def address(self, party: str) -> str:
        """The IPv4 address other parties reach ``party`` at."""
        if party == SERVER:
            return SERVER_ADDRESS
        self.netns(party)
        return f"10.77.{self.leaves.index(party) + 1}.2"

    @property
    def stage_pid(self) -> int | None:
        """The delay stage's pid (to read its CPU time), once a delay has been set."""
        return self._stage.pid if self._stage is not None else None

    # -- processes -------------------------------------------------------------------

    def popen(self, party: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process inside ``party``'s namespace; it is stopped on ``close()``."""
        proc: subprocess.Popen[Any] = subprocess.Popen(
            ns.in_netns(self.netns(party), argv), **kwargs
        )
        self._procs.append(proc)
        return proc

    def run(
        self, party: str, argv: Sequence[str], **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` inside ``party``'s namespace."""
        return subprocess.run(ns.in_netns(self.netns(party), argv), **kwargs)

    # -- shaping ---------------------------------------------------------------------

    def shape(
        self,
        leaf: str,
        profile: LinkProfile | None = None,
        *,
        up: LinkProfile | None = None,
        down: LinkProfile | None = None,
    ) -> None:
        """Shape ``leaf``'s link: ``profile`` both ways, or ``up``/``down`` on their own.

        Takes effect at once on a running link. During an outage the new shaping is
        remembered and applies when the outage ends. Packets already held by the delay
        stage keep their release time, and new ones never overtake them, except when
        the delay drops to zero: then the queue rule goes and new packets pass at once.
        """
        link = self._link(leaf)
        with self._lock:
            if profile is not None:
                link.shape = {"up": profile, "down": profile}
            if up is not None:
                link.shape["up"] = up
            if down is not None:
                link.shape["down"] = down
            self._apply(link)

    def shaping(self, leaf: str) -> dict[str, LinkProfile]:
        """The profiles ``leaf``'s link has (or returns to after an outage), by direction."""
        return dict(self._link(leaf).shape)

    def outage(self, leaf: str, seconds: float = DEFAULT_OUTAGE_S) -> Outage:
        """Drop everything on ``leaf``'s link both ways for ``seconds``; returns at once."""
        link = self._link(leaf)
        outage = Outage(self, leaf, seconds)
        with self._lock:
            link.outages += 1
            self._outages.append(outage)
            self._apply(link)
            outage._start()  # the clock starts once the DROP rules are in place
        return outage

    def _end_outage(self, outage: Outage) -> None:
        with self._lock:
            if self._closed:
                return
            link = self._link(outage.leaf)
            link.outages -= 1
            self._outages.remove(outage)
            self._apply(link)

    def _link(self, leaf: str) -> _Link:
        if not self._started or self._closed:
            raise RuntimeError("the testbed is not running (use start() or a with block)")
        try:
            return self._links[leaf]
        except KeyError:
            raise KeyError(f"no leaf {leaf!r} (leaves: {', '.join(self.leaves)})") from None

    def _apply(self, link: _Link) -> None:
        """Bring each direction's tbf, delay line and chain to the link's current state."""
        for direction in (link.up, link.down):
            profile = link.shape[direction.name]
            blackout = link.outages > 0
            rate = profile.rate_kbit
            if link.applied.get(f"{direction.name}-rate") != (rate,):
                self._apply_rate(direction, rate)
                link.applied[f"{direction.name}-rate"] = (rate,)
            delay = (profile.delay_ms, profile.jitter_ms)
            was = link.applied.get(f"{direction.name}-delay", (0.0, 0.0))
            if delay != was and profile.delay_ms > 0:  # the line is ready before the rule
                self._delay_stage(direction).set_delay(direction.key, *delay)
            rules = chain_rules(direction, profile, blackout=blackout)
            if link.applied.get(f"{direction.name}-rules") != tuple(rules):
                script = restore_script({direction.chain: rules})
                ns.run(
                    ns.in_netns(direction.recv_netns, ["iptables-restore", "--noflush"]),
                    stdin=script,
                )
                link.applied[f"{direction.name}-rules"] = tuple(rules)
            if was[0] > 0 and profile.delay_ms == 0 and self._stage is not None:
                self._stage.set_delay(direction.key, 0.0)  # the rule is gone: nothing new comes
            link.applied[f"{direction.name}-delay"] = delay

    def _apply_rate(self, direction: Direction, rate_kbit: int | None) -> None:
        tc = ["tc", "-n", direction.send_netns, "qdisc"]
        if rate_kbit is None:
            ns.run([*tc, "del", "dev", direction.send_dev, "root"], check=False)
        else:
            ns.run([*tc, "replace", "dev", direction.send_dev, "root", *tbf_args(rate_kbit)])

    def _delay_stage(self, direction: Direction) -> DelayStage:
        if self._stage is None:
            self._stage = DelayStage()
        self._stage.bind(direction.key, ns.netns_path(direction.recv_netns), direction.queue)
        return self._stage

    # -- building --------------------------------------------------------------------

    def _build(self) -> None:
        server = self.netns(SERVER)
        ns.run(["ip", "netns", "add", server])
        ns.run(["ip", "-n", server, "link", "set", "lo", "up"])
        ns.run(["ip", "-n", server, "addr", "add", f"{SERVER_ADDRESS}/32", "dev", "lo"])
        sysctls = {"net.ipv4.ip_forward": "1"}
        hooks: dict[str, list[str]] = {}
        for index, leaf in enumerate(self.leaves, start=1):
            link = self._build_leaf(leaf, index)
            self._links[leaf] = link
            sysctls[f"net.ipv6.conf.{link.up.recv_dev}.disable_ipv6"] = "1"
            hooks[link.up.chain] = []
        ns.write_sysctls(server, sysctls)
        self._wait_operstate_up()
        hook_lines = [hook_rule(link.up) for link in self._links.values()]
        ns.run(
            ns.in_netns(server, ["iptables-restore", "--noflush"]),
            stdin=restore_script(hooks, hook_lines),
        )

    def _wait_operstate_up(self, timeout_s: float = 5.0) -> None:
        """Wait until every veth reports UP: the kernel's linkwatch reports carrier late
        (up to a second), and programs that list interfaces (Chromium's ICE) skip those
        not yet RUNNING."""
        deadline = time.monotonic() + timeout_s
        for party in (SERVER, *self.leaves):
            netns = self.netns(party)
            while True:
                lines = ns.run(["ip", "-n", netns, "-o", "link", "show", "type", "veth"])
                if lines and all("state UP" in line for line in lines.splitlines()):
                    break
                if time.monotonic() > deadline:
                    raise ns.CommandFailed(f"veths in {netns} did not come up: {lines}")
                time.sleep(0.05)

    def _build_leaf(self, leaf: str, index: int) -> _Link:
        """One leaf namespace and its veth pair to the server, unshaped."""
        server, here = self.netns(SERVER), self.netns(leaf)
        leaf_dev, server_dev = f"{self.prefix}{index}l", f"{self.prefix}{index}s"
        subnet = f"10.77.{index}"
        ns.run(["ip", "netns", "add", here])
        ns.run(
            [
                "ip",
                "link",
                "add",
                leaf_dev,
                "netns",
                here,
                "type",
                "veth",
                "peer",
                "name",
                server_dev,
                "netns",
                server,
            ]
        )
        for netns, dev, host in ((here, leaf_dev, 2), (server, server_dev, 1)):
            ns.run(["ip", "-n", netns, "addr", "add", f"{subnet}.{host}/24", "dev", dev])
            ns.run(ns.in_netns(netns, ["ethtool", "-K", dev, *_flags_off(_OFFLOADS)]))
            ns.run(["ip", "-n", netns, "link", "set", dev, "up"])
        ns.run(["ip", "-n", here, "link", "set", "lo", "up"])
        ns.run(["ip", "-n", here, "route", "add", "default", "via", f"{subnet}.1"])
        ns.write_sysctls(here, {f"net.ipv6.conf.{leaf_dev}.disable_ipv6": "1"})
        up = Direction("up", here, leaf_dev, server, server_dev, f"NLUP{index}", index)
        down = Direction("down", server, server_dev, here, leaf_dev, "NLDOWN", 0)
        ns.run(
            ns.in_netns(here, ["iptables-restore", "--noflush"]),
            stdin=restore_script({down.chain: []}, [hook_rule(down)]),
        )
        return _Link(leaf, index, up, down)


def _flags_off(features: Sequence[str]) -> list[str]:
    return [arg for feature in features for arg in (feature, "off")]


# -- process-wide cleanup: atexit and SIGTERM --------------------------------------------

_LIVE: set[Testbed] = set()
_LIVE_LOCK = threading.Lock()
_SIGTERM_INSTALLED = False


def _register(testbed: Testbed) -> None:
    global _SIGTERM_INSTALLED
    with _LIVE_LOCK:
        _LIVE.add(testbed)
        if _SIGTERM_INSTALLED or threading.current_thread() is not threading.main_thread():
            return
        _SIGTERM_INSTALLED = True
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        close_all()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)  # die of SIGTERM, as without us

    signal.signal(signal.SIGTERM, on_sigterm)


def _unregister(testbed: Testbed) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(testbed)


def close_all() -> None:
    """Close every testbed of this process (atexit, SIGTERM)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for testbed in live:
        try:
            testbed.close()
        except Exception:
            _LOGGER.exception("could not close testbed %s", testbed.prefix)


atexit.register(close_all)
