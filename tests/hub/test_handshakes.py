"""The per-address limit on connections in their opening handshake (pure)."""

from __future__ import annotations

from desktop.hub.handshakes import HandshakeGate


def test_the_oldest_handshake_of_an_address_makes_room_and_other_addresses_are_apart():
    gate: HandshakeGate[str] = HandshakeGate(limit=2)
    assert gate.opened("10.0.0.1", "a") is None
    assert gate.opened("10.0.0.1", "b") is None
    assert gate.opened("10.0.0.2", "x") is None  # its own allowance
    assert gate.opened("10.0.0.1", "c") == "a"  # the oldest gives way, the newcomer stays
    assert gate.handshaking("10.0.0.1") == 2
    gate.done("b")  # upgraded
    gate.done("a")  # dropped earlier: already forgotten, ignored
    assert gate.opened("10.0.0.1", "d") is None
    gate.done("c")
    gate.done("d")
    gate.done("x")
    assert gate.handshaking("10.0.0.1") == gate.handshaking("10.0.0.2") == 0
    assert gate._by_address == {} and gate._address == {}  # nothing kept for gone addresses
