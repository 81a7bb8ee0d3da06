"""How the worker trusts the hub's TLS certificate: the system store, a CA file, or a pin.

A pin (``cert_sha256``) is the SHA-256 of the hub's leaf certificate.  With a pin the chain is
not verified (a self-signed console certificate has no chain) but the fingerprint is compared
inside the TLS handshake: a mismatch fails the handshake itself, so not even the HTTP upgrade
request, let alone the hello with the token, reaches an impostor.  ``check_peer`` repeats the
comparison on the open connection before the hello as a second lock, in case an event loop ever
drives TLS without going through ``SSLObject.do_handshake``.

Standard library only: the worker is frozen with stdlib and websockets.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from pathlib import Path
from typing import Any

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class PinMismatch(ssl.SSLCertVerificationError):
    """The hub presented a certificate whose SHA-256 is not the pinned one."""

    def __init__(self, expected: str, actual: str | None) -> None:
        got = f"'s certificate has SHA-256 {display(actual)}" if actual else " sent no certificate"
        super().__init__(
            f"the console{got}, but cert_sha256 in worker.ini pins {display(expected)}"
        )
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:  # SSLError's own would print the args tuple
        return str(self.args[0])


def normalize_fingerprint(text: str) -> str:
    """``AB:CD:...`` or ``abcd...`` (64 hex digits, colons and spaces ignored) -> lower hex.

    Raises ValueError saying what is wrong.
    """
    # "sha256 Fingerprint=AB:CD:..." is what `openssl x509 -fingerprint -sha256` prints.
    cleaned = re.sub(r"[\s:]", "", text.rpartition("=")[2]).lower()
    if not _HEX64.match(cleaned):
        raise ValueError(
            f"{text!r} is not a SHA-256 fingerprint: it needs 64 hex digits (colons allowed), "
            f"this has {len(cleaned)} character{'' if len(cleaned) == 1 else 's'}"
            + ("" if re.fullmatch(r"[0-9a-f]*", cleaned) else " and some are not hex digits")
        )
    return cleaned


def display(fingerprint: str) -> str:
    """Upper-case hex in colon pairs, the way certificate viewers show it."""
    return ":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)).upper()


def der_fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def pem_fingerprint(path: Path | str) -> str:
    """Fingerprint of the first certificate in a PEM file (the leaf in a chain file).

    Raises OSError when unreadable and ValueError when it holds no PEM certificate.
    """
    text = Path(path).read_text(encoding="ascii", errors="replace")
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise ValueError(f"{path} holds no PEM certificate (no {begin} line)")
    return der_fingerprint(ssl.PEM_cert_to_DER_cert(text[start : stop + len(end)]))


def check_der(der: bytes | None, expected: str) -> None:
    actual = der_fingerprint(der) if der else None
    if actual != expected:
        raise PinMismatch(expected, actual)


class _PinnedObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        super().do_handshake()
        # Only reached once the handshake completed (a partial one raises SSLWantReadError).
        check_der(self.getpeercert(binary_form=True), self._pin())

    def _pin(self) -> str:
        context = self.context
        assert isinstance(context, _PinnedContext)  # only _PinnedContext makes these
        return context.pin_sha256


class _PinnedContext(ssl.SSLContext):
    sslobject_class = _PinnedObject
    pin_sha256 = ""


def client_context(ca_file: Path | None = None, pin: str | None = None) -> ssl.SSLContext:
    """The context for ``wss://``: system trust, or ``ca_file`` (plus host name check), or a pin.

    With both, the chain is verified against ``ca_file`` and the pin is checked as well.
    Raises OSError/ssl.SSLError when ``ca_file`` cannot be read or holds no certificate.
    """
    if pin is None:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    else:
        context = _PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
        context.pin_sha256 = pin
        if ca_file is None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the pin replaces chain and name checks
        else:
            context.load_verify_locations(cafile=str(ca_file))
    return context


def check_peer(transport: Any, pin: str | None) -> None:
    """Second lock before the hello: the open connection's peer must match the pin."""
    if pin is None:
        return
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        raise PinMismatch(pin, None)
    check_der(ssl_object.getpeercert(binary_form=True), pin)
