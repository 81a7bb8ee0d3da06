"""permessage-deflate that leaves small messages uncompressed, for the worker and the hub.

Most frames are small: a heartbeat is ~70 bytes, an ack ~45, a run's start ~80.  Deflated on
their own (the hub asks for no context takeover) they shrink by 0-20 %, a few bytes, while a
fresh compressor costs ~12 us per message on the sending side and a fresh inflater ~4 us on the
receiving side: at 10,000 workers heartbeating every 5 s that is 2,000 of each per second for
nothing.  RFC 7692 (section 6) lets a sender leave any message uncompressed (RSV1 clear), and
every receiver, websockets' included, reads such a message as it is: a peer without this class
still understands us.  Output batches, which do compress (4x and more for log lines), are over
the threshold and are deflated as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.typing import ExtensionParameter

# Below this many bytes a message is sent as it is (measured: an output message of one log line,
# 175 bytes, deflates to 146; four lines, 427 bytes, to 180)
COMPRESS_FROM = 256

_DATA = (Opcode.TEXT, Opcode.BINARY)


class SmallPlainDeflate(PerMessageDeflate):
    def encode(self, frame: Frame) -> Frame:
        # Only a whole message in one frame: once the first frame of a fragmented message is
        # compressed, its continuation frames must be too (and the parent does that).
        if frame.fin and frame.opcode in _DATA and len(frame.data) < COMPRESS_FROM:
            return frame
        return super().encode(frame)


def _small_plain(ext: PerMessageDeflate) -> SmallPlainDeflate:
    return SmallPlainDeflate(
        ext.remote_no_context_takeover,
        ext.local_no_context_takeover,
        ext.remote_max_window_bits,
        ext.local_max_window_bits,
        ext.compress_settings,
    )


class ClientDeflate(ClientPerMessageDeflateFactory):
    """websockets' client factory, negotiating exactly as it does."""

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> PerMessageDeflate:
        return _small_plain(super().process_response_params(params, accepted_extensions))


class ServerDeflate(ServerPerMessageDeflateFactory):
    """websockets' server factory, negotiating exactly as it does."""

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, ext = super().process_request_params(params, accepted_extensions)
        return response, _small_plain(ext)


def client_deflate() -> ClientDeflate:
    """What websockets' client offers by default (compress_settings memLevel 5), made lean."""
    return ClientDeflate(compress_settings={"memLevel": 5})
