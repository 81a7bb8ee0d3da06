"""Small messages leave uncompressed, large ones deflated, read right by any peer: the frames'
RSV1 bits as they are on the wire, through real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import zlib

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode

from desktop.hub.server import DEFLATE
from worker.deflate import COMPRESS_FROM, SmallPlainDeflate, client_deflate

SMALL = json.dumps({"type": "heartbeat", "v": 1, "running": [1, 2]})
# log lines: they deflate well, as a worker's output batches do
LARGE = "".join(f"18:00:{i:02d} INFO copied {i * 7} files to /mnt/nas/daily\n" for i in range(60))
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def test_small_frames_pass_as_they_are_and_large_ones_are_deflated():
    ext = SmallPlainDeflate(True, True, 12, 12, {"memLevel": 5})
    small = ext.encode(Frame(Opcode.TEXT, SMALL.encode()))
    assert not small.rsv1 and small.data == SMALL.encode()
    edge = b"x" * (COMPRESS_FROM - 1)
    assert not ext.encode(Frame(Opcode.BINARY, edge)).rsv1
    large = ext.encode(Frame(Opcode.TEXT, LARGE.encode()))
    assert large.rsv1 and len(large.data) < len(LARGE) / 3
    at_threshold = ext.encode(Frame(Opcode.TEXT, b"y" * COMPRESS_FROM))
    assert at_threshold.rsv1
    # websockets' own extension reads both back
    reader = PerMessageDeflate(True, True, 12, 12)
    assert reader.decode(small).data == SMALL.encode()
    assert reader.decode(large).data == LARGE.encode()


def test_a_fragmented_message_is_deflated_whole_however_small_its_first_frame():
    ext = SmallPlainDeflate(True, True, 12, 12)
    first = ext.encode(Frame(Opcode.TEXT, b"ab", fin=False))
    last = ext.encode(Frame(Opcode.CONT, b"cd", fin=True))
    assert first.rsv1 and not last.rsv1  # RSV1 only on a compressed message's first frame
    reader = PerMessageDeflate(True, True, 12, 12)
    assert reader.decode(first).data + reader.decode(last).data == b"abcd"


def test_context_takeover_stays_in_step_when_small_messages_skip_the_compressor():
    """Against an older peer that keeps the deflate context between messages, the messages
    sent plain never enter either side's context, so the next compressed one still reads."""
    ext = SmallPlainDeflate(False, False, 12, 12)
    reader = PerMessageDeflate(False, False, 12, 12)
    for payload in (LARGE, SMALL, LARGE + "more\n", SMALL, LARGE):
        frame = ext.encode(Frame(Opcode.TEXT, payload.encode()))
        assert reader.decode(frame).data == payload.encode()


# --- on the wire ---------------------------------------------------------------------------


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bool, int, bytes]:
    """(RSV1, opcode, payload unmasked) of the next frame."""
    head = await reader.readexactly(2)
    rsv1, opcode, masked, length = bool(head[0] & 0x40), head[0] & 0x0F, head[1] & 0x80, head[1]
    length &= 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4) if masked else b"\0\0\0\0"
    data = await reader.readexactly(length)
    return rsv1, opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def _inflate(rsv1: bool, data: bytes) -> str:
    if rsv1:
        data = zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")
    return data.decode()


@pytest.mark.asyncio
async def test_the_hub_sends_small_messages_plain_and_large_ones_deflated_on_the_wire():
    async def handler(ws):
        await ws.send(SMALL)
        await ws.send(LARGE)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, extensions=[DEFLATE]) as server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
            ).encode()
        )
        response = (await reader.readuntil(b"\r\n\r\n")).decode()
        assert response.startswith("HTTP/1.1 101")
        assert "permessage-deflate" in response  # compression was agreed: the bits below count
        frames = [await _read_frame(reader) for _ in range(2)]
        writer.close()
    (small_rsv1, op1, small), (large_rsv1, op2, large) = frames
    assert (op1, op2) == (1, 1)
    assert not small_rsv1 and small.decode() == SMALL
    assert large_rsv1 and len(large) < len(LARGE) / 3 and _inflate(True, large) == LARGE


@pytest.mark.asyncio
async def test_the_worker_side_sends_small_messages_plain_and_large_ones_deflated_on_the_wire():
    got: asyncio.Future[list[tuple[bool, int, bytes]]] = asyncio.get_running_loop().create_future()

    async def raw_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        key = next(
            line.split(":", 1)[1].strip()
            for line in request.split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                "client_no_context_takeover; server_max_window_bits=12; "
                "client_max_window_bits=12\r\n\r\n"
            ).encode()
        )
        got.set_result([await _read_frame(reader) for _ in range(2)])
        writer.write(b"\x88\x02\x03\xe8")  # close 1000: let the client finish cleanly
        await _read_frame(reader)  # its close reply; the server then ends the TCP stream
        writer.close()

    server = await asyncio.start_server(raw_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with connect(f"ws://127.0.0.1:{port}/", extensions=[client_deflate()]) as ws:
            await ws.send(SMALL)
            await ws.send(LARGE)
            frames = await asyncio.wait_for(got, 10)
            await ws.wait_closed()
    finally:
        server.close()
    (small_rsv1, _, small), (large_rsv1, _, large) = frames
    assert not small_rsv1 and small.decode() == SMALL
    assert large_rsv1 and _inflate(True, large) == LARGE


@pytest.mark.asyncio
@pytest.mark.parametrize("ours_on", ["client", "server"])
async def test_either_side_talks_to_a_peer_with_websockets_default_deflate(ours_on):
    """A worker or hub without this class (older, or another websockets client) still agrees
    on deflate with us and reads every message."""
    echoed: list[str] = []

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    server_ext = [DEFLATE] if ours_on == "server" else [ServerPerMessageDeflateFactory()]
    client_ext = [client_deflate()] if ours_on == "client" else None
    async with serve(echo, "127.0.0.1", 0, extensions=server_ext) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/", extensions=client_ext) as ws:
            assert ws.protocol.extensions, "deflate was not agreed"
            for payload in (SMALL, LARGE, SMALL):
                await ws.send(payload)
                echoed.append(await ws.recv())
    assert echoed == [SMALL, LARGE, SMALL]
