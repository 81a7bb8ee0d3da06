"""One log record is one line, whatever a peer puts in the text we log (stdlib only: the worker
uses it, and the console imports it from here).

Names, reasons, hosts, versions, script names and error texts come from the other side of a
connection.  Written as they are, a newline in them starts what looks like a new record (a
forged "worker X online"), and terminal escape sequences repaint or hide what an admin reads
with ``tail``.  ``EscapingFormatter`` escapes the message part of every record, repr-style
(``\\n``, ``\\x1b``, ``\\u2028``), so no call site can forget; the traceback of a record that
carries one is our own and is kept as it is.  ``peer`` does the same for text shown elsewhere.
"""

from __future__ import annotations

import logging
import re

# C0 controls, DEL, C1 controls, and the Unicode characters that break or reorder a line on
# screen: line/paragraph separators, zero-width and bidirectional marks and overrides, BOM
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def peer(text: object) -> str:
    """``text`` (from a peer) as one printable line: control characters escaped repr-style."""
    return _UNSAFE.sub(_escape, str(text))


class EscapingFormatter(logging.Formatter):
    """A Formatter whose message part is always one line; exceptions and stacks keep theirs."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        record.message = peer(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message
