"""How one direction of a link is shaped: where each stage sits, and what it is told.

A packet from sender to receiver meets, in order:

1. **rate**: ``tbf`` on the egress of the sender's veth end. Its queue (``limit``) is
   ``QUEUE_S`` (250 ms) at the rate, as a modem buffer would be: a sender that
   overshoots sees delay grow by up to 250 ms, then loses packets. ``burst`` is two
   full frames (or 5 ms at the rate, if larger): enough that a full-size packet can
   pass, too little to let through a burst faster than the rate.
2. **loss**: ``iptables -t raw … -m statistic --mode random -j DROP`` in the receiver's
   PREROUTING, i.e. after the wire. Not in the sender's OUTPUT: a DROP there fails
   the sender's ``sendmsg`` with EPERM, which a real lossy link never does.
3. **delay**: ``-j NFQUEUE`` right after the loss rule, so the delay stage holds the
   packet for the one-way delay. Also at the receiver, on purpose: on the sender side
   a queued packet still belongs to its TCP socket, and TCP small queues would then
   allow only about two packets per delay in flight (measured: 322 kbit/s of TCP on
   a 600 kbit/s, 75 ms link, against 566 with the delay here). ``ip_rcv`` has
   orphaned the packet by PREROUTING.

The NFQUEUE rule has no ``--queue-bypass``: if the delay stage dies, the link goes
dead (loudly) instead of silently losing its delay. The kernel holds at most 4096
packets per delay line (``NFQA_CFG_QUEUE_MAXLEN``) and drops beyond that, like a
full buffer; with a rate set, the line never holds more than a few hundred.

Both rules live in a chain of their own (``NLUP<i>`` in the server namespace,
``NLDOWN`` in the leaf's), rewritten whole by one ``iptables-restore --noflush`` so
that a change of profile is atomic. An outage replaces the chain's rules with a bare
DROP.

What this does not model: a local TCP sender keeps its own queue in ``tbf`` short
(TCP small queues again), so bulk TCP sees the rate but little of the buffer bloat
(measured at 600 kbit/s, 75 ms: RTT 185 ms during a TCP transfer, where a modem's
buffer would give ≈400). UDP senders (WebRTC media) fill it as on a modem: RTT
387 ms under a UDP flood at 1.5× the rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tests.netlab.profiles import LinkProfile

QUEUE_S: Final = 0.25
FRAME_BYTES: Final = 1514  # 1500 MTU + Ethernet header: tbf counts whole frames
BURST_S: Final = 0.005
TABLE: Final = "raw"


@dataclass(frozen=True)
class Direction:
    """One direction of one leaf's link, and where its stages are installed."""

    name: str  # "up" (leaf → server) or "down" (server → leaf)
    send_netns: str
    send_dev: str
    recv_netns: str
    recv_dev: str
    chain: str
    queue: int

    @property
    def key(self) -> str:
        """The delay stage's name for this direction's queue."""
        return f"{self.recv_netns}/{self.queue}"


def tbf_args(rate_kbit: int) -> list[str]:
    """``tc qdisc … root`` arguments for a bottleneck of ``rate_kbit`` (1 kbit = 1000 bit)."""
    bytes_per_s = rate_kbit * 1000 / 8
    burst = max(2 * FRAME_BYTES, int(bytes_per_s * BURST_S))
    limit = max(4 * FRAME_BYTES, int(bytes_per_s * QUEUE_S))
    return ["tbf", "rate", f"{rate_kbit}kbit", "burst", str(burst), "limit", str(limit)]


def chain_rules(direction: Direction, profile: LinkProfile, *, blackout: bool) -> list[str]:
    """The rules of a direction's chain, as ``iptables-restore`` lines."""
    chain = direction.chain
    if blackout:
        return [f"-A {chain} -j DROP"]
    rules = []
    if profile.loss_pct >= 100:
        rules.append(f"-A {chain} -j DROP")
    elif profile.loss_pct > 0:
        probability = profile.loss_pct / 100
        rules.append(
            f"-A {chain} -m statistic --mode random --probability {probability:.6f} -j DROP"
        )
    if profile.delay_ms > 0:
        rules.append(f"-A {chain} -j NFQUEUE --queue-num {direction.queue}")
    return rules


def restore_script(chains: dict[str, list[str]], hooks: list[str] | None = None) -> str:
    """An ``iptables-restore --noflush`` input that empties and refills ``chains`` atomically.

    Declaring an existing chain (``:NAME - [0:0]``) under ``--noflush`` flushes just
    that chain; everything else in the table is left alone.
    """
    lines = [f"*{TABLE}"]
    lines += [f":{chain} - [0:0]" for chain in chains]
    for rules in chains.values():
        lines += rules
    lines += hooks or []
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def hook_rule(direction: Direction) -> str:
    """The PREROUTING jump that sends what arrives on the receiver's veth into the chain."""
    return f"-A PREROUTING -i {direction.recv_dev} -j {direction.chain}"
