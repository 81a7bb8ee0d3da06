"""Notifications, pure logic (no I/O): which events a run's end raises, channel validation, the
message a run makes, webhook bodies (plain, Slack, Teams), the HMAC signature and the retry
schedule.  The store enqueues, desktop/notify sends; both call in here."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from desktop.core import runs as states

# What a rule can name.  "recovered": a success right after a run that failed, timed out or
# was lost (the previous ended run of the same job).
FAILED, TIMED_OUT, LOST, MISSED, RECOVERED = "failed", "timed_out", "lost", "missed", "recovered"
EVENTS = (FAILED, TIMED_OUT, LOST, MISSED, RECOVERED)
TEST = "test"  # a "Send test" message, never from a rule
BAD_STATES = frozenset({states.FAILED, states.TIMED_OUT, states.LOST})

EMAIL, WEBHOOK = "email", "webhook"
KINDS = (EMAIL, WEBHOOK)
SECURITY = ("starttls", "tls", "none")
PRESETS = ("plain", "slack", "teams")

SIGNATURE_HEADER = "X-JobTrigger-Signature"
TIMESTAMP_HEADER = "X-JobTrigger-Timestamp"
DELIVERY_HEADER = "X-JobTrigger-Delivery"
EVENT_HEADER = "X-JobTrigger-Event"

OUTPUT_LINES = 20  # last lines of output in a message
MAX_ATTEMPTS = 8  # then the row is "failed" (given up), with its last error
_ADDRESS = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"']+$")


class ChannelError(ValueError):
    """A channel definition that cannot be saved; the message says which field and why."""


def event_for(state: str, previous_state: str | None) -> str | None:
    """The rule event a run that just ended in ``state`` raises (None: nothing to tell).
    ``previous_state``: the state of the job's previous ended run, for "recovered"."""
    if state in (FAILED, TIMED_OUT, LOST, MISSED):
        return state
    if state == states.SUCCEEDED and previous_state in BAD_STATES:
        return RECOVERED
    return None


def parse_events(values: Iterable[str]) -> list[str]:
    out = []
    for value in values:
        value = value.strip().lower().replace("-", "_").replace(" ", "_")
        if value == "timed out":
            value = TIMED_OUT
        if value not in EVENTS:
            raise ChannelError(f"unknown event {value!r}: use {', '.join(EVENTS)}")
        if value not in out:
            out.append(value)
    if not out:
        raise ChannelError("a rule needs at least one event")
    return sorted(out, key=EVENTS.index)


def check_address(value: str) -> str:
    value = value.strip()
    _, addr = parseaddr(value)
    # one address per entry: a comma or CR/LF would smuggle in more recipients or headers
    if not addr or not _ADDRESS.match(addr) or any(c in value for c in "\r\n,;"):
        raise ChannelError(f"{value!r} is not an e-mail address")
    return value


def check_url(value: str) -> str:
    value = value.strip()
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ChannelError(f"{value!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ChannelError(f"{value!r}: only http:// and https:// URLs are allowed")
    if not parts.hostname:
        raise ChannelError(f"{value!r}: the URL has no host")
    del port
    return value


def validate_channel(kind: str, config: Mapping[str, Any], secret: str) -> dict[str, Any]:
    """The channel's config, normalised; ChannelError naming the field when wrong."""
    if kind == EMAIL:
        host = str(config.get("host", "")).strip()
        if not host or any(c.isspace() for c in host):
            raise ChannelError("host: the SMTP server's name is required")
        security = str(config.get("security", "starttls"))
        if security not in SECURITY:
            raise ChannelError(f"security: use one of {', '.join(SECURITY)}")
        default_port = {"starttls": 587, "tls": 465, "none": 25}[security]
        try:
            given = config.get("port")
            port = default_port if given in (None, "") else int(given)
        except (TypeError, ValueError):
            raise ChannelError("port: a number from 1 to 65535") from None
        if not 1 <= port <= 65535:
            raise ChannelError("port: a number from 1 to 65535")
        sender = check_address(str(config.get("sender", "")))
        to = config.get("to") or []
        if isinstance(to, str):
            to = [t for t in re.split(r"[,;]", to) if t.strip()]
        if not to:
            raise ChannelError("to: at least one recipient")
        username = str(config.get("username", "")).strip()
        if secret and not username:
            raise ChannelError("username: a password needs a user name")
        return {
            "host": host,
            "port": port,
            "security": security,
            "username": username,
            "sender": sender,
            "to": [check_address(t) for t in to],
        }
    if kind == WEBHOOK:
        preset = str(config.get("preset", "plain"))
        if preset not in PRESETS:
            raise ChannelError(f"preset: use one of {', '.join(PRESETS)}")
        return {"url": check_url(str(config.get("url", ""))), "preset": preset}
    raise ChannelError(f"kind: use one of {', '.join(KINDS)}")


def describe_channel(kind: str, config: Mapping[str, Any]) -> str:
    if kind == EMAIL:
        return f"e-mail via {config.get('host')}:{config.get('port')} to {', '.join(config['to'])}"
    parts = urlsplit(config.get("url", ""))
    port = f":{parts.port}" if parts.port else ""
    where = f"{parts.scheme}://{parts.hostname}{port}"
    preset = config.get("preset", "plain")
    return f"webhook ({preset}) to {where}/..."  # the path of a Slack URL is its secret


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """What a message tells about a run, times already written in the display zone."""

    run_id: int
    job: str
    state: str
    event: str
    worker: str
    attempt: int
    exit_code: int | None
    reason: str
    scheduled: str
    started: str
    finished: str
    zone: str
    output: tuple[str, ...]  # last lines, as stored (masked before storing)
    how_to_open: str


TITLES = {
    FAILED: "failed",
    TIMED_OUT: "timed out",
    LOST: "was lost",
    MISSED: "was missed",
    RECOVERED: "recovered",
    TEST: "test message",
}


def _one_line(text: str) -> str:
    """No CR/LF or other control characters: a subject is a mail header."""
    return "".join(c if c.isprintable() else " " for c in text)


def subject(f: RunFacts) -> str:
    if f.event == TEST:
        return "[Job Trigger] test message"
    return _one_line(f"[Job Trigger] {f.job} {TITLES.get(f.event, f.event)} (run {f.run_id})")


def _slack_escape(text: str) -> str:
    """Slack reads <...> as links and mentions (<!channel>): output must not ping anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def body_text(f: RunFacts) -> str:
    if f.event == TEST:
        return "This is a test message from Job Trigger: the channel works."
    lines = [
        f"Job: {f.job}",
        f"Run: {f.run_id} (attempt {f.attempt}), {f.state}"
        + (f", exit code {f.exit_code}" if f.exit_code is not None else ""),
        f"Worker: {f.worker or '-'}",
        f"Scheduled: {f.scheduled or '-'}",
        f"Started: {f.started or '-'}",
        f"Finished: {f.finished or '-'}",
        f"(times in {f.zone})",
    ]
    if f.reason:
        lines.append(f"Reason: {f.reason}")
    if f.output:
        lines += ["", f"Last {len(f.output)} lines of output:", *f.output]
    if f.how_to_open:
        lines += ["", f.how_to_open]
    return "\n".join(lines)


def facts_dict(f: RunFacts) -> dict[str, Any]:
    return {
        "event": f.event,
        "job": f.job,
        "run_id": f.run_id,
        "state": f.state,
        "attempt": f.attempt,
        "exit_code": f.exit_code,
        "worker": f.worker,
        "reason": f.reason,
        "scheduled": f.scheduled,
        "started": f.started,
        "finished": f.finished,
        "time_zone": f.zone,
        "output_tail": list(f.output),
        "open": f.how_to_open,
    }


def webhook_body(preset: str, f: RunFacts) -> bytes:
    """The JSON body for a webhook: our own shape, or what Slack / Teams incoming webhooks take."""
    title, text = subject(f), body_text(f)
    if preset == "slack":
        doc: dict[str, Any] = {"text": f"*{_slack_escape(title)}*\n```{_slack_escape(text)}```"}
    elif preset == "teams":
        # an Adaptive Card message: what Teams Workflows webhooks (and the older connectors) take
        doc = {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": True},
                            {
                                "type": "TextBlock",
                                "text": text,
                                "wrap": True,
                                "fontType": "Monospace",
                            },
                        ],
                    },
                }
            ],
        }
    else:
        doc = {"title": title, "text": text, **facts_dict(f)}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body): the receiver recomputes
    it with the shared secret; the timestamp in the signed text lets it refuse old replays."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def webhook_headers(
    secret: str, timestamp: str, body: bytes, delivery: str, event: str
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "JobTrigger-notify",
        DELIVERY_HEADER: delivery,
        EVENT_HEADER: event,
        TIMESTAMP_HEADER: timestamp,
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


def backoff_seconds(attempts: int, base: float = 30.0, cap: float = 3600.0) -> float:
    """Wait before attempt ``attempts + 1``: base, 2*base, 4*base ... up to cap."""
    # typeshed types int ** int as Any (a negative power gives a float); this one never is
    factor: int = 2 ** max(0, attempts - 1)
    return min(cap, base * factor)


def gives_up(attempts: int, max_attempts: int = MAX_ATTEMPTS) -> bool:
    return attempts >= max_attempts


def short_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:1000]
