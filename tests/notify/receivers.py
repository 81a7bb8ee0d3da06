"""Real receivers on 127.0.0.1 (port 0) for the notification tests: an HTTP server that
records every request and can fail or hang on purpose, and an aiosmtpd SMTP server."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.smtp import SMTP, AuthResult


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


class HookReceiver:
    """``plan``: statuses to answer, first to last, then 200.  ``hold()``: requests wait until
    ``release()`` (to make a sender time out)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.plan: list[int] = []
        self._cond = threading.Condition()
        self._release = threading.Event()
        self._release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._cond:
                    receiver.requests.append(
                        Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = receiver.plan.pop(0) if receiver.plan else 200
                    receiver._cond.notify_all()
                receiver._release.wait(10)
                self.send_response(status)
                payload = b"ok" if status == 200 else b"receiver failed on purpose"
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def hold(self) -> None:
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def wait_for(self, count: int, seconds: float) -> list[Request]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, seconds):
                raise AssertionError(f"{len(self.requests)} requests arrived, expected {count}")
            return list(self.requests)

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


class MailHandler:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        self.arrived.set()
        return "250 OK"


class MailServer:
    """aiosmtpd on the test's loop.  ``password``: AUTH is offered (without TLS: 127.0.0.1 only)
    and only user "jobs" with that password gets in."""

    def __init__(self, password: str | None = None) -> None:
        self.handler = MailHandler()
        self.password = password
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.logins: list[tuple[str, bool]] = []

    def _auth(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"jobs" and auth_data.password == (self.password or "").encode()
        self.logins.append((auth_data.login.decode(), ok))
        return AuthResult(success=ok, handled=False)  # the server answers 535 itself

    def _protocol(self):
        if self.password is None:
            return SMTP(self.handler, hostname="receiver.test")
        return SMTP(
            self.handler,
            hostname="receiver.test",
            authenticator=self._auth,
            auth_require_tls=False,
        )

    async def start(self) -> MailServer:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._protocol, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
