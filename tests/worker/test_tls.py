"""TLS trust: a real `python -m worker` against a real wss:// hub with a self-signed certificate.

ca_file and cert_sha256 each let the worker in; a wrong pin, a foreign CA, a certificate for
another host name, or no trust option at all are refused before the HTTP upgrade, so the hub
never sees a request, let alone a hello with the token.  Certificates are made with the
openssl command line (no extra Python dependency).
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest
import pytest_asyncio
from websockets.asyncio.server import serve

from tests.conftest import timeout
from tests.worker.hubfixture import TestHub, start_worker, stop_worker, write_config
from worker import tls
from worker.config import ConfigError, load


def make_cert(folder: Path, name: str, san: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=timeout(60),
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("certs")
    return {
        "hub": make_cert(folder, "hub", "IP:127.0.0.1"),
        "other": make_cert(folder, "other", "IP:127.0.0.1"),
        "elsewhere": make_cert(folder, "elsewhere", "DNS:elsewhere.example"),
    }


class TlsHub(TestHub):
    """The test hub behind TLS; counts HTTP upgrade requests to prove none arrived."""

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.requests = 0

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/ws/heartbeat"

    async def start(self) -> None:
        self.server = await serve(
            self._handler, "127.0.0.1", self.port, max_size=None, ssl=self.context,
            process_request=self._saw_request,
        )  # fmt: skip
        self.port = self.server.sockets[0].getsockname()[1]

    def _saw_request(self, connection, request) -> None:
        self.requests += 1


@pytest_asyncio.fixture
async def tls_hub(certs):
    hub = TlsHub(*certs["hub"])
    await hub.start()
    yield hub
    if hub.server is not None:
        await hub.stop()


def fingerprint_by_openssl(cert: Path) -> str:
    out = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
        check=True, capture_output=True, text=True, timeout=timeout(30),
    ).stdout  # fmt: skip
    return out.strip()  # "sha256 Fingerprint=AB:CD:..." (the case varies by version)


# --- a real worker over wss -----------------------------------------------------------------


async def run_job_over_tls(hub: TlsHub, worker_dir: Path, **keys: str) -> None:
    proc = await start_worker(write_config(worker_dir, hub.url, **keys))
    try:
        await hub.connected()
        assert hub.hellos[0]["token"] == "secret-token"
        await hub.dispatch(1, "echo_job.py", "over tls", env={"EXIT_CODE": "0"})
        result = await hub.wait_finished(1)
        assert result["outcome"] == "succeeded"
        assert hub.text(1).startswith("arg: over tls\n")
    finally:
        await stop_worker(proc)


@pytest.mark.asyncio
async def test_ca_file_trusts_the_hub_certificate(tls_hub, worker_dir, certs):
    cert = certs["hub"][0]
    (worker_dir / "hub.crt").write_bytes(cert.read_bytes())
    await run_job_over_tls(tls_hub, worker_dir, ca_file="hub.crt")  # relative to the ini


@pytest.mark.asyncio
async def test_right_pin_connects_in_any_common_spelling(tls_hub, worker_dir, certs):
    # exactly what openssl prints, "SHA256 Fingerprint=AB:CD:...", is accepted as is
    await run_job_over_tls(tls_hub, worker_dir, cert_sha256=fingerprint_by_openssl(certs["hub"][0]))


@pytest.mark.asyncio
async def test_pin_and_ca_file_together(tls_hub, worker_dir, certs):
    cert = certs["hub"][0]
    await run_job_over_tls(
        tls_hub, worker_dir, ca_file=str(cert), cert_sha256=tls.pem_fingerprint(cert)
    )


async def refused_once(hub: TlsHub, worker_dir: Path, **keys: str) -> str:
    """Run `worker --once`; it must exit 1 having sent nothing. Returns its log."""
    proc = await start_worker(write_config(worker_dir, hub.url, **keys), "--once")
    try:
        code = await asyncio.wait_for(proc.wait(), timeout(30))
    finally:
        await stop_worker(proc)
    log = (worker_dir / "worker.log").read_text()
    assert code == 1, log
    assert hub.requests == 0 and hub.hellos == [] and hub.messages == []
    assert "secret-token" not in log
    return log


@pytest.mark.asyncio
async def test_wrong_pin_is_refused_before_anything_is_sent(tls_hub, worker_dir, certs):
    hub_pin = tls.pem_fingerprint(certs["hub"][0])
    wrong = tls.pem_fingerprint(certs["other"][0])
    log = await refused_once(tls_hub, worker_dir, cert_sha256=wrong)
    assert "Refusing the console at wss://127.0.0.1:" in log
    assert f"has SHA-256 {tls.display(hub_pin)}" in log
    assert f"cert_sha256 in worker.ini pins {tls.display(wrong)}" in log
    assert "Nothing was sent to it" in log and "workers fingerprint" in log


@pytest.mark.parametrize(
    ("trust", "why"),
    [
        ("other", "self-signed certificate"),  # a CA that did not sign the hub's certificate
        ("elsewhere", "mismatch"),  # signed as expected but for another host name
        (None, "self-signed certificate"),  # the system store does not know it
    ],
)
@pytest.mark.asyncio
async def test_untrusted_certificate_is_refused_with_advice(tls_hub, worker_dir, certs, trust, why):
    hub = tls_hub
    if trust == "elsewhere":
        # the hub presents a certificate for elsewhere.example and the worker trusts exactly it
        hub = TlsHub(*certs["elsewhere"])
        await hub.start()
    keys = {"ca_file": str(certs[trust][0])} if trust else {}
    try:
        log = await refused_once(hub, worker_dir, **keys)
    finally:
        if hub is not tls_hub:
            await hub.stop()
    assert "is not trusted" in log and why in log
    assert "set ca_file in" in log and "cert_sha256" in log


# --- configuration ----------------------------------------------------------------------------


def ini(folder: Path, url: str = "wss://hub.example:8000/ws/heartbeat", **keys: str) -> Path:
    return write_config(folder, url, **keys)


def test_config_reads_ca_file_relative_to_the_ini_and_normalises_the_pin(tmp_path, certs):
    (tmp_path / "hub.crt").write_bytes(certs["hub"][0].read_bytes())
    pin = tls.pem_fingerprint(certs["hub"][0])
    cfg = load(ini(tmp_path, ca_file="hub.crt", cert_sha256=tls.display(pin)), environ={})
    assert cfg.ca_file == tmp_path / "hub.crt"
    assert cfg.cert_sha256 == pin
    plain = load(ini(tmp_path), environ={})
    assert (plain.ca_file, plain.cert_sha256) == (None, None)


def test_environment_overrides_the_trust_options(tmp_path, certs, monkeypatch):
    pin = tls.pem_fingerprint(certs["hub"][0])
    monkeypatch.chdir(certs["hub"][0].parent)  # an environment path is relative to the cwd
    cfg = load(
        ini(tmp_path, ca_file="missing.crt", cert_sha256="00" * 32),
        environ={"JOBTRIGGER_CA_FILE": "hub.crt", "JOBTRIGGER_CERT_SHA256": pin.upper()},
    )
    assert (cfg.ca_file, cfg.cert_sha256) == (certs["hub"][0], pin)


@pytest.mark.parametrize(
    ("url", "keys", "expected"),
    [
        ("wss://h:1/ws", {"ca_file": "nope.crt"}, "[worker] ca_file: {nope} is not a file"),
        ("wss://h:1/ws", {"ca_file": "junk.crt"}, "holds no usable PEM certificate"),
        (
            "wss://h:1/ws",
            {"cert_sha256": "ab" * 31},
            "needs 64 hex digits (colons allowed), this has 62",
        ),
        ("wss://h:1/ws", {"cert_sha256": "zz" * 32}, "some are not hex digits"),
        (
            "ws://h:1/ws",
            {"cert_sha256": "ab" * 32},
            "cert_sha256 only apply to TLS, but server_url is 'ws://h:1/ws': use wss://",
        ),
        (
            "ws://h:1/ws",
            {"ca_file": "junk.crt", "cert_sha256": "ab" * 32},
            "ca_file and cert_sha256 only apply to TLS",
        ),
    ],
)
def test_config_errors_name_the_key_and_the_fix(tmp_path, url, keys, expected):
    (tmp_path / "junk.crt").write_text("not a certificate\n")
    with pytest.raises(ConfigError) as info:
        load(ini(tmp_path, url, **keys), environ={})
    message = str(info.value)
    assert str(tmp_path / "worker.ini") in message
    assert expected.format(nope=tmp_path / "nope.crt") in message


def test_env_pin_error_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="JOBTRIGGER_CERT_SHA256: '12' is not a SHA-256"):
        load(ini(tmp_path), environ={"JOBTRIGGER_CERT_SHA256": "12"})


@pytest.mark.asyncio
async def test_worker_process_stops_on_a_bad_pin_setting(worker_dir):
    config = write_config(worker_dir, "wss://127.0.0.1:9/ws/heartbeat", cert_sha256="abc")
    proc = await start_worker(config)
    code = await asyncio.wait_for(proc.wait(), timeout(30))
    log = (worker_dir / "worker.log").read_text()
    assert code == 2
    assert "Configuration error:" in log and "cert_sha256" in log and "64 hex digits" in log


# --- pure helpers -----------------------------------------------------------------------------


def test_pem_fingerprint_agrees_with_openssl(certs):
    for cert, _ in certs.values():
        printed = fingerprint_by_openssl(cert)
        assert tls.normalize_fingerprint(printed) == tls.pem_fingerprint(cert)
        assert tls.display(tls.pem_fingerprint(cert)) == printed.split("=")[1].upper()


def test_pem_fingerprint_of_a_chain_file_is_the_leaf(tmp_path, certs):
    chain = tmp_path / "chain.pem"
    chain.write_text(certs["hub"][0].read_text() + certs["other"][0].read_text())
    assert tls.pem_fingerprint(chain) == tls.pem_fingerprint(certs["hub"][0])
    key_only = certs["hub"][1]
    with pytest.raises(ValueError, match="holds no PEM certificate"):
        tls.pem_fingerprint(key_only)


def test_check_peer_without_tls_refuses_a_pin():
    class Plain:
        def get_extra_info(self, name):
            return None

    with pytest.raises(tls.PinMismatch, match="the console sent no certificate, but"):
        tls.check_peer(Plain(), "ab" * 32)
    tls.check_peer(Plain(), None)  # nothing pinned: nothing to compare
