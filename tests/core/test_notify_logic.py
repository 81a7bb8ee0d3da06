"""Notifications and chains, pure logic: events, validation, messages, signing, payloads,
backoff, argument templates and cycles.  No I/O."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from desktop.core import chains as c
from desktop.core import notify as n

FACTS = n.RunFacts(
    run_id=42,
    job="backup",
    state="failed",
    event="failed",
    worker="w1",
    attempt=1,
    exit_code=3,
    reason="exit code 3",
    scheduled="2026-05-01 20:00:00 HKT",
    started="2026-05-01 20:00:01 HKT",
    finished="2026-05-01 20:00:05 HKT",
    zone="Asia/Hong_Kong",
    output=("copying", "[stderr] disk full"),
    how_to_open="python -m desktop runs show 42",
)


@pytest.mark.parametrize(
    ("state", "previous", "event"),
    [
        ("failed", None, "failed"),
        ("timed_out", "succeeded", "timed_out"),
        ("lost", None, "lost"),
        ("missed", None, "missed"),
        ("succeeded", "failed", "recovered"),
        ("succeeded", "lost", "recovered"),
        ("succeeded", "succeeded", None),
        ("succeeded", None, None),
        ("cancelled", "failed", None),
        ("skipped", None, None),
    ],
)
def test_event_for_a_runs_end(state, previous, event):
    assert n.event_for(state, previous) == event


def test_events_are_parsed_and_unknown_ones_refused():
    assert n.parse_events(["lost", "Failed", "timed-out"]) == ["failed", "timed_out", "lost"]
    with pytest.raises(n.ChannelError, match="unknown event"):
        n.parse_events(["exploded"])
    with pytest.raises(n.ChannelError, match="at least one"):
        n.parse_events([])


@pytest.mark.parametrize(
    "bad", ["", "nobody", "a@b", "a b@c.d", "x@y.z\r\nBcc: evil@example.com", "a@b.c,d@e.f"]
)
def test_bad_addresses_are_refused(bad):
    with pytest.raises(n.ChannelError):
        n.check_address(bad)


def test_good_addresses_pass():
    assert n.check_address(" Ops <ops@example.com> ") == "Ops <ops@example.com>"


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "example.com",
        "http://",
        "http://host:99999/",
    ],
)
def test_non_http_urls_are_refused(bad):
    with pytest.raises(n.ChannelError):
        n.check_url(bad)


def test_channel_validation_normalises_and_names_the_field():
    email = n.validate_channel(
        "email", {"host": "smtp.x", "security": "tls", "sender": "a@b.c", "to": "x@y.z; u@v.w"}, ""
    )
    assert email["port"] == 465 and email["to"] == ["x@y.z", "u@v.w"]
    with pytest.raises(n.ChannelError, match=r"^to:"):
        n.validate_channel("email", {"host": "h", "sender": "a@b.c"}, "")
    with pytest.raises(n.ChannelError, match=r"^username:"):
        n.validate_channel("email", {"host": "h", "sender": "a@b.c", "to": "x@y.z"}, "pw")
    with pytest.raises(n.ChannelError, match=r"^port:"):
        n.validate_channel("email", {"host": "h", "port": 0, "sender": "a@b.c", "to": "x@y.z"}, "")
    with pytest.raises(n.ChannelError, match=r"^preset:"):
        n.validate_channel("webhook", {"url": "https://x.y/", "preset": "discord"}, "")
    with pytest.raises(n.ChannelError, match=r"^kind:"):
        n.validate_channel("pager", {}, "")


def test_description_hides_the_webhook_path():
    """The path of a Slack or Teams URL is its credential: never shown in lists or logs."""
    text = n.describe_channel("webhook", {"url": "https://hooks.slack.com/services/T/B/SECRET"})
    assert "SECRET" not in text and "hooks.slack.com" in text


def test_message_carries_job_run_worker_times_output_and_how_to_open():
    body = n.body_text(FACTS)
    for part in (
        "backup",
        "42",
        "w1",
        "exit code 3",
        "20:00:05 HKT",
        "Asia/Hong_Kong",
        "disk full",
        "runs show 42",
    ):
        assert part in body
    assert n.subject(FACTS) == "[Job Trigger] backup failed (run 42)"


def test_signature_is_hmac_sha256_of_timestamp_and_body():
    body = n.webhook_body("plain", FACTS)
    expected = hmac.new(b"k3y", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert n.sign("k3y", "1700000000", body) == "sha256=" + expected
    assert n.verify("k3y", "1700000000", body, "sha256=" + expected)
    assert not n.verify("other", "1700000000", body, "sha256=" + expected)
    assert not n.verify("k3y", "1700000001", body, "sha256=" + expected)
    headers = n.webhook_headers("", "1", body, "7", "failed")
    assert n.SIGNATURE_HEADER not in headers  # no secret, no signature


def test_presets_shape_the_body_for_slack_and_teams():
    plain = json.loads(n.webhook_body("plain", FACTS))
    assert plain["run_id"] == 42 and plain["event"] == "failed" and plain["exit_code"] == 3
    slack = json.loads(n.webhook_body("slack", FACTS))
    assert set(slack) == {"text"} and "backup failed" in slack["text"]
    teams = json.loads(n.webhook_body("teams", FACTS))
    card = teams["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    assert "disk full" in card["content"]["body"][1]["text"]


def test_backoff_doubles_up_to_the_cap_and_gives_up():
    assert [n.backoff_seconds(a, 30, 300) for a in range(1, 7)] == [30, 60, 120, 240, 300, 300]
    assert not n.gives_up(n.MAX_ATTEMPTS - 1) and n.gives_up(n.MAX_ATTEMPTS)


@pytest.mark.parametrize(
    ("on", "state", "fires"),
    [
        ("success", "succeeded", True),
        ("success", "failed", False),
        ("failure", "failed", True),
        ("failure", "timed_out", True),
        ("failure", "lost", True),
        ("failure", "cancelled", False),
        ("end", "cancelled", True),
        ("end", "succeeded", True),
        ("end", "missed", False),
        ("end", "skipped", False),
    ],
)
def test_which_ends_fire_a_chain(on, state, fires):
    assert c.fires(on, state) is fires


def test_argument_templates():
    assert c.render_args(
        ["--from", "{run_id}", "rc={exit_code}", "{{x}}"], 7, 2, "failed", "a"
    ) == [
        "--from",
        "7",
        "rc=2",
        "{x}",
    ]
    assert c.render_args(["{exit_code}"], 7, None, "lost", "a") == [""]
    with pytest.raises(c.ChainError, match="unknown field"):
        c.check_args(["{password}"])
    with pytest.raises(c.ChainError):
        c.check_args(["{run_id"])
    with pytest.raises(c.ChainError, match="on:"):
        c.check_on("sometimes")


def test_cycles_are_found():
    assert c.find_cycle([("a", "b"), ("b", "c")]) is None
    assert c.find_cycle([("a", "a")]) == ["a", "a"]
    cycle = c.find_cycle([("a", "b"), ("b", "c"), ("c", "a"), ("x", "a")])
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    # a diamond is not a cycle
    assert c.find_cycle([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]) is None


def test_peer_text_cannot_break_the_subject_or_ping_a_slack_channel():
    from dataclasses import replace

    hostile = replace(FACTS, job="x\r\nBcc: all@example.com", output=("<!channel> look",))
    assert "\r" not in n.subject(hostile) and "\n" not in n.subject(hostile)
    slack = json.loads(n.webhook_body("slack", hostile))["text"]
    assert "<!channel>" not in slack and "&lt;!channel&gt;" in slack
