"""nfnetlink_queue spoken directly over an AF_NETLINK socket, with ``struct``.

The kernel here has no ``sch_netem``, so delay is added in userspace: an iptables
``NFQUEUE`` rule hands each packet to a netlink socket, and the packet stays in the
kernel until that socket sends a verdict. Only the packet id is needed (copy mode
META, no payload copied), and one ``NFQNL_MSG_VERDICT_BATCH`` accepts every packet up
to an id, so a FIFO delay line costs one ``recv`` per packet and one ``send`` per
release tick. No library (NetfilterQueue needs ``libnetfilter-queue-dev`` to build).

Netlink sockets belong to the network namespace they are created in: ``QueueSocket``
enters the namespace (``setns``) only for ``socket()`` and returns, so one process in
the root namespace can serve queues in many namespaces.

Message layouts are those of ``linux/netfilter/nfnetlink_queue.h``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

NETLINK_NETFILTER: Final = 12
NFNL_SUBSYS_QUEUE: Final = 3
NFQNL_MSG_PACKET: Final = 0
NFQNL_MSG_VERDICT: Final = 1
NFQNL_MSG_CONFIG: Final = 2
NFQNL_MSG_VERDICT_BATCH: Final = 3

NLM_F_REQUEST: Final = 0x1
NLM_F_ACK: Final = 0x4
NLMSG_ERROR: Final = 2

NFQA_PACKET_HDR: Final = 1
NFQA_VERDICT_HDR: Final = 2
NFQA_CFG_CMD: Final = 1
NFQA_CFG_PARAMS: Final = 2
NFQA_CFG_QUEUE_MAXLEN: Final = 3
NFQNL_CFG_CMD_BIND: Final = 1
NFQNL_CFG_CMD_UNBIND: Final = 2
NFQNL_COPY_META: Final = 1
NF_ACCEPT: Final = 1

CLONE_NEWNET: Final = 0x40000000
_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, portid (host order)
_NFGENMSG = struct.Struct(">BBH")  # family, version, res_id (queue number, big endian)
_NLATTR = struct.Struct("=HH")  # len, type (host order)
_NLA_TYPE_MASK: Final = 0x3FFF  # strips NLA_F_NESTED / NLA_F_NET_BYTEORDER
DEFAULT_MAXLEN: Final = 4096
RCVBUF_BYTES: Final = 4 << 20


def _msg_type(msg: int) -> int:
    return (NFNL_SUBSYS_QUEUE << 8) | msg


def encode_attr(attr_type: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to four bytes."""
    raw = _NLATTR.pack(_NLATTR.size + len(payload), attr_type) + payload
    return raw + b"\0" * (-len(raw) % 4)


def encode_message(msg: int, queue: int, attrs: bytes, *, flags: int, seq: int) -> bytes:
    """An nfnetlink_queue message: nlmsghdr, nfgenmsg (AF_UNSPEC, v0, queue), attributes."""
    body = _NFGENMSG.pack(socket.AF_UNSPEC, 0, queue) + attrs
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), _msg_type(msg), flags, seq, 0) + body


def encode_bind(queue: int, seq: int) -> bytes:
    cmd = struct.pack(">BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET)
    attrs = encode_attr(NFQA_CFG_CMD, cmd)
    return encode_message(NFQNL_MSG_CONFIG, queue, attrs, flags=NLM_F_REQUEST | NLM_F_ACK, seq=seq)


def encode_params(queue: int, seq: int, maxlen: int) -> bytes:
    """Copy mode META (ids and metadata, no payload) and the queue's length limit."""
    attrs = encode_attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META))
    attrs += encode_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", maxlen))
    return encode_message(NFQNL_MSG_CONFIG, queue, attrs, flags=NLM_F_REQUEST | NLM_F_ACK, seq=seq)


def encode_verdict(queue: int, packet_id: int, *, batch: bool, seq: int = 0) -> bytes:
    """NF_ACCEPT for one packet, or (``batch``) for every queued packet with id <= it."""
    attrs = encode_attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, packet_id))
    msg = NFQNL_MSG_VERDICT_BATCH if batch else NFQNL_MSG_VERDICT
    return encode_message(msg, queue, attrs, flags=NLM_F_REQUEST, seq=seq)


def iter_messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, seq, payload after the nlmsghdr) for each netlink message in ``data``."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, msg_type, _flags, seq, _portid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        yield msg_type, seq, data[offset + _NLMSGHDR.size : offset + length]
        offset += (length + 3) & ~3


def packet_id(payload: bytes) -> int | None:
    """The packet id in an NFQNL_MSG_PACKET payload (after nfgenmsg), or None."""
    offset = _NFGENMSG.size
    while offset + _NLATTR.size <= len(payload):
        length, attr_type = _NLATTR.unpack_from(payload, offset)
        if length < _NLATTR.size:
            return None
        if attr_type & _NLA_TYPE_MASK == NFQA_PACKET_HDR:
            (pid,) = struct.unpack_from(">I", payload, offset + _NLATTR.size)
            return int(pid)
        offset += (length + 3) & ~3
    return None


def parse_packet_ids(data: bytes) -> list[int]:
    """Every packet id announced in one datagram from the queue socket."""
    ids = []
    for msg_type, _seq, payload in iter_messages(data):
        if msg_type == _msg_type(NFQNL_MSG_PACKET):
            found = packet_id(payload)
            if found is not None:
                ids.append(found)
    return ids


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python >= 3.12
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def inside_netns(path: str) -> Iterator[None]:
    """Run the body in the network namespace at ``path`` (this thread only), then return."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


class QueueSocket:
    """One NFQUEUE queue number in one network namespace, bound and in copy mode META."""

    def __init__(self, queue: int, netns_path: str | None, *, maxlen: int = DEFAULT_MAXLEN):
        self.queue = queue
        self.overflows = 0  # ENOBUFS: announcements lost; batch verdicts still release them
        if netns_path is None:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        else:
            with inside_netns(netns_path):
                self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF_BYTES)  # SO_RCVBUFFORCE
            self._sock.bind((0, 0))
            self._sock.settimeout(5.0)
            self._request(encode_bind(queue, 1), 1)
            self._request(encode_params(queue, 2, maxlen), 2)
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise

    def _request(self, message: bytes, seq: int) -> None:
        """Send a config message and wait for its ACK; raise the kernel's error if any."""
        self._sock.send(message)
        while True:
            data = self._sock.recv(65536)
            for msg_type, got_seq, payload in iter_messages(data):
                if msg_type == NLMSG_ERROR and got_seq == seq:
                    (code,) = struct.unpack_from("=i", payload)
                    if code:
                        raise OSError(-code, f"nfqueue {self.queue} config: {os.strerror(-code)}")
                    return

    def fileno(self) -> int:
        return self._sock.fileno()

    def read_ids(self) -> list[int]:
        """Drain the socket: the ids of every packet announced since the last call."""
        ids: list[int] = []
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                return ids
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overflows += 1
                continue
            ids.extend(parse_packet_ids(data))

    def accept_upto(self, last_id: int) -> None:
        """Release every packet of this queue with an id up to ``last_id`` (one message)."""
        self._sock.send(encode_verdict(self.queue, last_id, batch=True))

    def close(self) -> None:
        """Close; the kernel drops what is still queued, so release it first."""
        self._sock.close()
