"""The nfnetlink_queue messages are laid out as linux/netfilter/nfnetlink_queue.h says."""

from __future__ import annotations

import struct

from tests.netlab import nfqueue as nfq


def test_packet_ids_are_read_from_every_message_in_a_datagram() -> None:
    def packet(packet_id: int) -> bytes:
        hdr = struct.pack(">IHB", packet_id, 0x0800, 0) + b"\0"  # nfqnl_msg_packet_hdr, padded
        attrs = nfq.encode_attr(nfq.NFQA_PACKET_HDR | 0x8000, hdr)  # a flag bit must not matter
        attrs = nfq.encode_attr(9, struct.pack(">I", 1500)) + attrs  # another attribute first
        return nfq.encode_message(nfq.NFQNL_MSG_PACKET, 3, attrs, flags=0, seq=0)

    assert nfq.parse_packet_ids(packet(7) + packet(8)) == [7, 8]


def test_a_batch_verdict_accepts_up_to_an_id_on_its_queue() -> None:
    message = nfq.encode_verdict(5, 1234, batch=True)

    length, msg_type, flags, _seq, _portid = struct.unpack_from("=IHHII", message)
    family, version, queue = struct.unpack_from(">BBH", message, 16)
    attr_len, attr_type = struct.unpack_from("=HH", message, 20)
    verdict, packet_id = struct.unpack_from(">II", message, 24)
    assert (length, msg_type, flags) == (len(message), (3 << 8) | 3, nfq.NLM_F_REQUEST)
    assert (family, version, queue) == (0, 0, 5)
    assert (attr_len, attr_type, verdict, packet_id) == (12, nfq.NFQA_VERDICT_HDR, 1, 1234)


def test_config_asks_for_metadata_only() -> None:
    message = nfq.encode_params(2, seq=9, maxlen=4096)

    params = message[20 + 4 : 20 + 4 + 5]
    assert struct.unpack(">IB", params) == (0, nfq.NFQNL_COPY_META)
    assert struct.unpack_from("=IHHII", message)[3] == 9
