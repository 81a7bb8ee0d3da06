"""The network calls of one delivery, blocking, run in the sender's own threads (never the
database thread, never the event loop).  Every call has a timeout.

E-mail: the standard library's smtplib/email (STARTTLS, implicit TLS or plain), certificates
checked with the system's trust store.  Webhooks: urllib from the standard library, a POST with
a timeout and no redirects followed (a redirect would resend the signed body elsewhere).
Nothing here needs a third-party package, so the console's frozen build stays as it is."""

from __future__ import annotations

import smtplib
import ssl
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from desktop.core import notify as n

TIMEOUT_SECONDS = 15.0


class DeliveryError(Exception):
    """A delivery that did not go through; the text says why (shown as the last error)."""


def send(
    kind: str,
    config: dict,
    secret: str,
    facts: n.RunFacts,
    delivery_id: str,
    timeout: float = TIMEOUT_SECONDS,
) -> None:
    """Deliver one message or raise DeliveryError with the reason."""
    try:
        if kind == n.EMAIL:
            send_email(config, secret, facts, delivery_id, timeout)
        elif kind == n.WEBHOOK:
            post_webhook(config, secret, facts, delivery_id, timeout)
        else:
            raise DeliveryError(f"unknown channel kind {kind!r}")
    except DeliveryError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(
            f"login refused by the mail server: {exc.smtp_code} {_reply_text(exc.smtp_error)}"
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"mail server said {exc.smtp_code} {_reply_text(exc.smtp_error)}"
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"recipients refused: {', '.join(exc.recipients)}") from None
    except (TimeoutError, OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        raise DeliveryError(n.short_error(exc)) from None


def _reply_text(reply: bytes | str) -> str:
    """An SMTP error's text: the server's reply is bytes, but smtplib raises some of its own
    errors (and a server's unreadable reply) with a str."""
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


def build_email(config: dict, facts: n.RunFacts, delivery_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = n.subject(facts)
    msg["From"] = config["sender"]
    msg["To"] = ", ".join(config["to"])
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(idstring=f"jobtrigger-{delivery_id}")
    msg["X-JobTrigger-Delivery"] = delivery_id
    msg.set_content(n.body_text(facts))
    return msg


def send_email(
    config: dict, secret: str, facts: n.RunFacts, delivery_id: str, timeout: float
) -> None:
    host, port, security = config["host"], int(config["port"]), config["security"]
    context = ssl.create_default_context()
    if security == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if config.get("username"):
            smtp.login(config["username"], secret)
        smtp.send_message(build_email(config, facts, delivery_id))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise DeliveryError(f"the webhook answered {code} (redirect to {newurl}); not followed")


_opener = urllib.request.build_opener(_NoRedirect)


def post_webhook(
    config: dict, secret: str, facts: n.RunFacts, delivery_id: str, timeout: float
) -> None:
    body = n.webhook_body(config.get("preset", "plain"), facts)
    headers = n.webhook_headers(secret, str(int(time.time())), body, delivery_id, facts.event)
    request = urllib.request.Request(config["url"], data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as answer:
            answer.read(65536)
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        raise DeliveryError(
            f"the webhook answered {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
        ) from None
    except urllib.error.URLError as exc:
        raise DeliveryError(f"cannot reach the webhook: {exc.reason}") from None
