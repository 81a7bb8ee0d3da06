import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker import protocol as p


def test_round_trip_every_type_with_defaults():
    frame = p.encode("dispatch", run_id=7, attempt=1, script="test_job.py")
    msg = p.decode(frame)
    assert msg.type == "dispatch"
    assert msg["args"] == [] and msg["env"] == {} and msg["timeout"] is None
    # defaults are fresh objects, not shared between messages
    msg["args"].append("x")
    assert p.decode(frame)["args"] == []


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"v":1}', "no 'type'"),
        ('{"type":"ack"}', "protocol version"),
        ('{"type":"ack","v":99,"run_id":1,"seq":1}', "unsupported protocol version 99"),
        ('{"type":"nope","v":1}', "unknown message type"),
        ('{"type":"ack","v":1,"seq":1}', "missing field 'run_id'"),
        ('{"type":"ack","v":1,"run_id":true,"seq":1}', "'run_id' must be an integer"),
        ('{"type":"ack","v":1,"run_id":0,"seq":1}', "at least 1"),
        ('{"type":"output","v":1,"run_id":1,"seq":1,"stream":"x","text":""}', "one of"),
        ('{"type":"dispatch","v":1,"run_id":1,"attempt":1,"script":"a","args":[1]}', "item 0"),
        ('{"type":"dispatch","v":1,"run_id":1,"attempt":1,"script":"a","env":{"A":1}}', "'A'"),
        ('{"type":"started","v":1,"run_id":1,"seq":1,"at":NaN}', "finite"),
        ("[" * 100_000, "JSON"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_malformed_frames_raise_protocol_error_with_reason(frame, reason):
    with pytest.raises(p.ProtocolError, match=reason.replace("(", r"\(")):
        p.decode(frame)


def test_oversize_frame_is_refused_before_parsing():
    frame = json.dumps({"type": "error", "v": 1, "reason": "x" * p.MAX_FRAME_BYTES})
    with pytest.raises(p.ProtocolError, match="over the limit"):
        p.decode(frame)


def test_encoding_an_invalid_message_fails_at_the_sender():
    with pytest.raises(p.ProtocolError):
        p.encode("ack", run_id="1", seq=1)


# --- decoding never fails with anything but ProtocolError -----------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_field_names = st.sampled_from(
    ["run_id", "seq", "stream", "text", "script", "args", "env", "timeout", "code", "reason"]
)


@settings(max_examples=150, deadline=None)
@given(
    mtype=st.sampled_from(sorted(p.SCHEMAS)),
    fields=st.dictionaries(_field_names, _json, max_size=6),
)
def test_any_json_object_decodes_or_raises_protocol_error(mtype, fields):
    frame = json.dumps({"type": mtype, "v": 1, **fields})
    try:
        msg = p.decode(frame)
    except p.ProtocolError as exc:
        assert str(exc)  # a reason a person can read
    else:
        assert msg.type == mtype and set(msg.fields) == set(p.SCHEMAS[mtype])


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_decode_or_raise_protocol_error(frame):
    try:
        result = p.decode(frame)
    except p.ProtocolError as exc:
        assert str(exc)
    else:
        assert isinstance(result, p.Message)
