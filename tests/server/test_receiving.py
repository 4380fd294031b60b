"""Received packets: stale RTP is dropped, control traffic never; the socket is drained."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from server.media.receiving import FreshMediaQueue, is_rtp_media, read_eagerly

RTP = bytes([0x80, 96]) + bytes(10)
RTCP = bytes([0x80, 200]) + bytes(10)
DTLS = bytes([22, 0xFE, 0xFD]) + bytes(10)


def test_demultiplexing() -> None:
    assert is_rtp_media(RTP) and not is_rtp_media(RTCP) and not is_rtp_media(DTLS)
    assert not is_rtp_media(bytes([0x80, 96]))  # too short to be RTP


async def test_stale_media_is_dropped_but_control_and_the_newest_packet_are_not() -> None:
    queue = FreshMediaQueue(max_age_s=0.05)
    for data in (RTP, RTCP, RTP, DTLS, RTP):
        queue.put_nowait((data, 1))
    await asyncio.sleep(0.08)
    got = [queue.get_nowait()[0] for _ in range(3)]
    assert got == [RTCP, DTLS, RTP], "two stale RTP packets gone, the last one kept"
    assert queue.dropped == 2 and queue.empty()
    queue.put_nowait((RTP, 1))
    assert (await queue.get())[0] == RTP, "fresh media passes"
    queue.put_nowait(None)
    assert await queue.get() is None


async def test_everything_waiting_in_the_socket_is_read_in_one_wakeup() -> None:
    loop = asyncio.get_running_loop()
    arrived: list[bytes] = []

    class Collect(asyncio.DatagramProtocol):  # keeps its transport, as aioice's protocol does
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            arrived.append(data)

    transport, protocol = await loop.create_datagram_endpoint(Collect, local_addr=("127.0.0.1", 0))
    try:
        assert read_eagerly(protocol)
        address = transport.get_extra_info("sockname")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for i in range(50):
                sender.sendto(bytes([i]), address)
        time.sleep(0.05)  # all 50 wait in the kernel before the loop looks
        await asyncio.sleep(0)  # one loop iteration: asyncio itself reads one datagram
        await asyncio.sleep(0)
        assert len(arrived) == 50
        assert arrived == [bytes([i]) for i in range(50)]
    finally:
        transport.close()


def test_a_protocol_without_its_own_udp_socket_is_left_alone() -> None:
    class Relayed(asyncio.DatagramProtocol):
        transport = None  # a TURN relay's datagrams come through another protocol

    relayed = Relayed()
    before = relayed.datagram_received
    assert not read_eagerly(relayed)
    assert relayed.datagram_received == before
