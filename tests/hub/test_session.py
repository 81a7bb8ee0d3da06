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
    permanent = msg("declined", run_id=4, reason="environment refused: PATH", permanent=True)
    assert session.feed(permanent, 1.0) == [s.Declined(4, "environment refused: PATH", True)]
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


def test_throttle_holds_refusals_longer_per_address_and_per_name():
    t = AuthThrottle(base_delay=0.25, max_delay=2.0, block_after=5, window=60)
    assert t.refusal_delay("a", "w", 0) == 0
    for i in range(4):
        assert t.failed("a", f"guess{i}", i) == i + 1
    assert t.refusal_delay("a", "other", 4) == 2.0  # 0.25 * 2**3, counted by address
    assert t.refusal_delay("b", "other", 4) == 0  # other addresses and names are not affected
    assert t.failed("a", "w", 5) == 5
    assert t.blocked("a", "anything", 5)
    assert not t.blocked("a", "anything", 5 + 61)  # the window passed
    assert t.refusal_delay("a", "w", 5 + 61) == 0


def test_distributed_guessing_of_one_name_is_counted_by_name():
    t = AuthThrottle(base_delay=0.25, max_delay=5.0, block_after=5, window=60)
    for i in range(5):
        t.failed(f"10.0.0.{i}", "victim", float(i))
    assert t.blocked("10.0.0.99", "victim", 5)  # a fresh address guessing the same name
    assert not t.blocked("10.0.0.99", "someone-else", 5)


def test_throttle_memory_is_bounded_under_cycled_addresses_and_names():
    t = AuthThrottle(max_keys=3, block_after=4)
    for i in range(1000):
        t.failed(f"10.0.{i // 256}.{i % 256}", f"name{i}", float(i) / 100)
    assert t.sizes() == (3, 3)
    assert t.refusal_delay("10.0.3.231", "x", 10) > 0  # the latest is kept, the stalest dropped
    assert t.refusal_delay("10.0.0.0", "name0", 10) == 0
    for i in range(100):
        t.failed("one", "one", 20 + i / 1000)
    assert len(t._by_address.times["one"]) == 4  # times per key are capped too


def test_refusals_are_warned_about_at_most_n_a_minute_and_the_rest_summed_up():
    t = AuthThrottle(warnings_per_minute=2)
    assert [t.warn(0.0), t.warn(1.0), t.warn(2.0), t.warn(3.0)] == [
        (True, 0),
        (True, 0),
        (False, 0),
        (False, 0),
    ]
    assert t.warn(61.0) == (True, 2)  # a new minute: the two held back are mentioned
    assert t.warn(62.0) == (True, 0)


def test_a_heartbeat_carries_the_catalogue_only_when_it_changed():
    session = ready_session()
    assert session.feed(msg("heartbeat", running=[3]), 1.0) == [s.Heard((3,), None)]
    entry = {"name": "new.py", "sha256": "ab" * 32}
    actions = session.feed(msg("heartbeat", running=[], scripts=[entry]), 2.0)
    assert actions == [s.Heard((), (entry,))]
    bad = {"type": "heartbeat", "v": 1, "scripts": [{"name": "x.py"}]}
    with pytest.raises(ProtocolError, match="sha256"):
        validate(bad)


def test_over_limit_messages_close_with_code_limit_before_anything_is_built():
    ids = list(range(1, s.MAX_RUN_IDS + 2))
    cases = [
        ("heartbeat", {"running": ids}, "heartbeat lists 2001 running runs; the limit is 2000"),
        ("heartbeat", {"scripts": [{"name": "a" * 256, "sha256": ""}]}, "catalogue entry"),
        ("started", {"run_id": 1, "seq": s.MAX_SEQ + 1, "at": 0}, "seq is over"),
        (
            "output",
            {"run_id": s.MAX_RUN_ID + 1, "seq": 1, "stream": "stdout", "text": ""},
            "run_id is over",
        ),
        (
            "finished",
            {"run_id": 1, "seq": 1, "at": 0, "outcome": "failed", "exit_code": 2**32},
            "exit_code is outside",
        ),
    ]
    for mtype, fields, text in cases:
        session = ready_session()
        actions = session.feed(msg(mtype, **fields), 1.0)
        assert sent_types(actions) == ["reject"], mtype
        assert actions[0].message["code"] == "limit" and text in actions[0].message["reason"]
        assert session.state == s.CLOSED
    # the largest allowed values pass (a Windows exit code is unsigned 32-bit)
    session = ready_session()
    fine = msg(
        "finished", run_id=s.MAX_RUN_ID, seq=s.MAX_SEQ, at=0, outcome="failed", exit_code=2**32 - 1
    )
    assert isinstance(session.feed(fine, 1.0)[0], s.StoreFinished)


def test_a_hello_over_the_limits_is_refused_before_authentication():
    for over, text in (
        ({"runs": list(range(1, s.MAX_RUN_IDS + 2))}, "hello lists 2001 runs"),
        ({"name": "w\ud800"}, "hello field 'name' is not valid Unicode text"),
        ({"scripts": [{"name": "x", "sha256": "f" * 129}]}, "catalogue entry"),
    ):
        session = s.Session()
        actions = session.feed(msg("hello", **{**HELLO, **over}), 0.0)
        assert sent_types(actions) == ["reject"] and text in actions[0].message["reason"]


def test_hello_deadline_closes_only_a_connection_that_never_said_hello():
    session = s.Session(opened=100.0, hello_deadline=10.0)
    assert session.hello_overdue(109.9) == []
    actions = session.hello_overdue(110.0)
    assert actions[0].message == {
        "type": "reject",
        "v": 1,
        "code": "timeout",
        "reason": "no hello within 10 s of connecting; closed",
    }
    assert session.state == s.CLOSED
    late = s.Session(opened=100.0, hello_deadline=10.0)
    late.feed(msg("hello", **HELLO), 101.0)
    assert late.hello_overdue(200.0) == []  # authenticating: the deadline no longer applies


def test_a_refused_report_gets_an_error_and_its_own_ack_once():
    session = ready_session()
    actions = session.refuse_report(7, 3, "run 7: run is assigned to another worker")
    assert [a.message for a in actions] == [
        {"type": "error", "v": 1, "reason": "run 7: run is assigned to another worker"},
        {"type": "ack", "v": 1, "run_id": 7, "seq": 3},
    ]
    # a replay of it is acked by the session without reaching the store again
    replay = session.feed(msg("started", run_id=7, seq=3, at=0), 1.0)
    assert sent_types(replay) == ["ack"]


def test_the_remembered_acks_are_bounded():
    session = ready_session()
    for run_id in range(1, s.MAX_ACKED + 101):
        session.committed(run_id, 1)
    assert len(session.acked) == s.MAX_ACKED
    assert 1 not in session.acked and s.MAX_ACKED + 100 in session.acked


def test_the_flood_limit_follows_the_consoles_slots_not_the_hellos():
    session = s.Session(flood_limit=100)
    session.feed(msg("hello", **{**HELLO, "slots": 1000}), 0.0)
    session.authenticated("w1", 0.0, slots=2)
    assert session.flood_limit == 100 + 2 * s.PER_SLOT_FLOOD
