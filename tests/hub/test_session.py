"""The per-connection state machine, with plain values: no sockets, no sleeps."""

from __future__ import annotations

import pytest

from desktop.hub import session as s
from desktop.hub.throttle import AuthThrottle
from worker.protocol import ProtocolError, decode, validate


def msg(mtype, **fields):
    return validate({"type": mtype, "v": 1, **fields})


HELLO = dict(name="w1", token="t", host="h", os="Linux", version="1", scripts=[], slots=1)


def ready_session(**kw) -> s.Session:
    session = s.Session(remote="10.0.0.1", **kw)
    actions = session.feed(msg("hello", **HELLO), 0.0)
    assert actions == [s.Authenticate(msg("hello", **HELLO))]
    welcome = session.authenticated("w1", 0.0)
    assert welcome[0].message["type"] == "welcome"
    assert session.state == s.READY
    return session


def sent_types(actions):
    return [a.message["type"] for a in actions if isinstance(a, s.Send)]


def test_hello_then_welcome_carries_the_heartbeat_interval():
    session = s.Session(heartbeat_interval=2.5)
    assert session.feed(msg("hello", **HELLO), 1.0)[0].__class__ is s.Authenticate
    (send,) = session.authenticated("w1", 1.0)
    assert send.message["heartbeat_interval"] == 2.5
    assert send.message["worker"] == "w1"


@pytest.mark.parametrize("first", ["heartbeat", "error"])
def test_anything_before_hello_is_refused_and_closed(first):
    session = s.Session()
    fields = {"reason": "x"} if first == "error" else {}
    actions = session.feed(msg(first, **fields), 0.0)
    assert sent_types(actions) == ["reject"]
    assert actions[0].message["code"] == "malformed"
    assert "first message must be hello" in actions[0].message["reason"]
    assert isinstance(actions[-1], s.Close)
    assert session.state == s.CLOSED
    assert session.feed(msg("hello", **HELLO), 0.1) == []  # closed stays closed


def test_message_while_authenticating_is_refused():
    session = s.Session()
    session.feed(msg("hello", **HELLO), 0.0)
    actions = session.feed(msg("heartbeat"), 0.1)
    assert sent_types(actions) == ["reject"]
    assert session.authenticated("w1", 0.2) == []  # too late: it was closed


def test_refused_hello_sends_the_stores_code_and_reason():
    session = s.Session()
    session.feed(msg("hello", **HELLO), 0.0)
    actions = session.refused("revoked", "this worker was revoked")
    assert actions[0].message == {
        "type": "reject",
        "v": 1,
        "code": "revoked",
        "reason": "this worker was revoked",
    }
    assert actions[1] == s.Close("revoked", "this worker was revoked")


def test_protocol_error_is_answered_with_its_reason():
    session = ready_session()
    try:
        decode("{not json")
    except ProtocolError as exc:
        error = exc
    actions = session.feed(error, 1.0)
    assert actions[0].message["code"] == "malformed"
    assert "not valid JSON" in actions[0].message["reason"]
    assert session.state == s.CLOSED


def test_hub_messages_from_a_worker_are_refused():
    session = ready_session()
    actions = session.feed(msg("ack", run_id=1, seq=1), 1.0)
    assert "may not send 'ack'" in actions[0].message["reason"]


def test_second_hello_is_refused():
    session = ready_session()
    actions = session.feed(msg("hello", **HELLO), 1.0)
    assert sent_types(actions) == ["reject"]


def test_reports_become_store_actions_and_acks_follow_commits_only():
    session = ready_session()
    a = session.feed(msg("started", run_id=7, seq=1, at=10.0), 1.0)
    assert a == [s.StoreStarted(7, 1, 10.0)]
    a = session.feed(msg("output", run_id=7, seq=2, stream="stdout", text="hi\n"), 1.1)
    assert a == [s.StoreOutput(7, 2, "stdout", "hi\n", None)]
    a = session.feed(msg("finished", run_id=7, seq=3, outcome="failed", exit_code=3, at=11.0), 1.2)
    assert a == [s.StoreFinished(7, 3, "failed", 3, "", 11.0)]
    # nothing was acked yet: only the server's commit leads to an ack
    (ack,) = session.committed(7, 3)
    assert ack.message == {"type": "ack", "v": 1, "run_id": 7, "seq": 3}
    assert session.committed(7, 2) == []  # never backwards, never twice
    assert session.committed(7, 3) == []


def test_replays_of_committed_messages_are_re_acked_not_stored():
    session = ready_session()
    session.committed(7, 5)
    actions = session.feed(msg("output", run_id=7, seq=4, stream="stdout", text="old"), 1.0)
    assert actions == [s.Send({"type": "ack", "v": 1, "run_id": 7, "seq": 5})]
    actions = session.feed(msg("output", run_id=7, seq=6, stream="stderr", text="new"), 1.0)
    assert actions == [s.StoreOutput(7, 6, "stderr", "new", None)]


def test_heartbeat_declined_and_error_are_reported():
    session = ready_session()
    assert session.feed(msg("heartbeat", running=[3, 4]), 1.0) == [s.Heard((3, 4))]
    assert session.feed(msg("declined", run_id=3, reason="busy"), 1.0) == [s.Declined(3, "busy")]
    assert session.feed(msg("error", reason="oops"), 1.0) == [s.WorkerReportedError("oops")]


def test_heartbeat_problem_reaches_the_server_and_is_bounded():
    session = ready_session()
    text = "cannot write to the spool /w/spool (No space left on device)"
    assert session.feed(msg("heartbeat", running=[3], problem=text), 1.0) == [
        s.Heard((3,), None, text)
    ]
    too_long = '{"type": "heartbeat", "v": 1, "problem": "%s"}' % ("x" * 1001)
    with pytest.raises(ProtocolError, match="'problem' is longer than 1000"):
        decode(too_long)


def test_flood_limit_closes_with_a_reason():
    session = ready_session(flood_limit=10)
    assert session.flood_limit == 10 + s.PER_SLOT_FLOOD  # the hello announced one slot
    session.flood_limit = 10
    for i in range(10):
        assert session.feed(msg("heartbeat"), 5.0 + i * 0.01)[0] == s.Heard(())
    actions = session.feed(msg("heartbeat"), 5.2)
    assert actions[0].message["code"] == "flood"
    assert "more than 10 messages in one second" in actions[0].message["reason"]


def test_flood_window_slides():
    session = ready_session(flood_limit=10)
    session.flood_limit = 10
    for i in range(100):  # 5 a second for 20 seconds: fine
        assert session.feed(msg("heartbeat"), i * 0.2) == [s.Heard(())]


def test_silence_counts_from_the_last_message():
    session = ready_session()
    session.feed(msg("heartbeat"), 10.0)
    assert session.silent_for(12.0) == 2.0
    assert not session.is_silent(12.0, grace=3.0)
    assert session.is_silent(13.5, grace=3.0)
    fresh = s.Session()
    assert not fresh.is_silent(100.0, grace=3.0)  # not authenticated: not a worker yet


def test_throttle_doubles_then_blocks_and_forgets():
    t = AuthThrottle(base_delay=0.25, max_delay=2.0, block_after=5, window=60)
    assert t.delay("a", 0) == 0
    for i in range(4):
        t.failed("a", i)
    assert t.delay("a", 4) == 2.0  # 0.25 * 2**3
    assert t.delay("b", 4) == 0  # other addresses are not affected
    t.failed("a", 5)
    assert t.blocked("a", 5)
    assert not t.blocked("a", 5 + 61)  # the window passed
    t.failed("c", 0)
    t.succeeded("c")
    assert t.delay("c", 1) == 0


def test_throttle_memory_is_bounded():
    t = AuthThrottle(max_addresses=3)
    for i in range(10):
        t.failed(f"10.0.0.{i}", float(i))
    assert len(t._failures) == 3
    assert t.delay("10.0.0.9", 10) > 0


def test_a_heartbeat_carries_the_catalogue_only_when_it_changed():
    session = ready_session()
    assert session.feed(msg("heartbeat", running=[3]), 1.0) == [s.Heard((3,), None)]
    entry = {"name": "new.py", "sha256": "ab" * 32}
    actions = session.feed(msg("heartbeat", running=[], scripts=[entry]), 2.0)
    assert actions == [s.Heard((), (entry,))]
    bad = {"type": "heartbeat", "v": 1, "scripts": [{"name": "x.py"}]}
    with pytest.raises(ProtocolError, match="sha256"):
        validate(bad)
