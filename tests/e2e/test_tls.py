"""TLS: with a certificate and key in the settings the hub speaks wss://, and real workers that
trust the certificate through worker.ini (ca_file, or the cert_sha256 pin that
`workers add --write-ini` writes) run jobs over it.  `workers fingerprint` and the settings
checks for the certificate paths are tested here too."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from desktop.service import Core
from desktop.store import queries
from desktop.store import settings as known
from tests.conftest import timeout
from tests.e2e.conftest import FAST, SAMPLE, WorkerProcs, cli, prepare_db, wait_until
from worker import tls
from worker.config import load


def self_signed(folder) -> tuple[str, str]:
    cert, key = folder / "hub.crt", folder / "hub.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return str(cert), str(key)


def no_system_trust_override() -> dict[str, str]:
    # Trust must come from worker.ini, not from an OpenSSL variable in the test's environment.
    return {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}


@pytest.mark.asyncio
async def test_wss_hub_with_real_workers(tmp_path):
    cert, key = self_signed(tmp_path)
    url = f"sqlite:///{tmp_path / 'tls.db'}"
    prepare_db(url, {**FAST, "hub_tls_cert": cert, "hub_tls_key": key})
    core = Core(url, "127.0.0.1", 0)
    await core.start()
    workers = WorkerProcs(tmp_path)
    try:
        assert core.hub_url.startswith("wss://127.0.0.1:")
        # a client that does not trust the certificate cannot connect
        with pytest.raises(ssl.SSLCertVerificationError):
            async with connect(core.hub_url):
                pass
        token = await core.add_worker("secure", tags=["ca"])
        home = workers.prepare("secure", core.hub_url, token)
        with open(home / "worker.ini", "a", encoding="utf-8") as f:
            f.write(f"ca_file = {cert}\n")
        workers.start("secure", env=no_system_trust_override())

        # the CLI writes a worker.ini pinned to the hub's certificate
        home = tmp_path / "pinned"
        added = await asyncio.to_thread(
            cli, url, "workers", "add", "pinned", "--tags", "pin", "--server-url", core.hub_url,
            "--write-ini", str(home / "worker.ini"),
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert "pinned to the console's certificate" in added.stdout
        assert load(home / "worker.ini", environ={}).cert_sha256 == tls.pem_fingerprint(cert)
        (home / "scripts").mkdir()
        shutil.copy(SAMPLE, home / "scripts")
        workers.start("pinned", env=no_system_trust_override())

        for name, tag in (("secure", "ca"), ("pinned", "pin")):
            job = await core.save_job(
                {
                    "name": f"t-{tag}",
                    "script": "test_job.py",
                    "args": ["0", "1", "0"],
                    "schedule": {"kind": "manual"},
                    "target_kind": "worker",
                    "target_value": name,
                }
            )
            run_id = await core.run_now(job.id)

            async def done(run_id=run_id):
                r = await core.db.call(queries.get_run, run_id)
                return r.state == "succeeded" and r

            record = await wait_until(core, done, 30, f"the run over wss on {name}")
            assert record.worker_name == name
        context = ssl.create_default_context(cafile=cert)
        async with connect(core.hub_url, ssl=context) as ws:
            await ws.send(json.dumps({"type": "heartbeat", "v": 1}))
            reply = json.loads(await ws.recv())
        assert reply["type"] == "reject" and "first message must be hello" in reply["reason"]
    finally:
        workers.stop_all()
        await core.stop()


def test_workers_fingerprint_prints_the_pin_line(tmp_path):
    cert, key = self_signed(tmp_path)
    openssl = subprocess.run(
        ["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"],
        check=True, capture_output=True, text=True, timeout=timeout(30),
    ).stdout  # fmt: skip
    expected = f"cert_sha256 = {openssl.strip().split('=')[1].upper()}"
    url = f"sqlite:///{tmp_path / 'fp.db'}"

    none = cli(url, "workers", "fingerprint")
    assert none.returncode == 2 and "setting hub_tls_cert is empty" in none.stderr

    given = cli(url, "workers", "fingerprint", cert)
    assert given.returncode == 0, given.stderr
    assert given.stdout.strip() == expected

    prepare_db(url, {"hub_tls_cert": cert, "hub_tls_key": key})
    from_settings = cli(url, "workers", "fingerprint")
    assert from_settings.returncode == 0, from_settings.stderr
    assert from_settings.stdout.strip() == expected

    wrong = cli(url, "workers", "fingerprint", key)
    assert wrong.returncode == 2 and "holds no PEM certificate" in wrong.stderr
    assert "not its key" in wrong.stderr
    missing = cli(url, "workers", "fingerprint", str(tmp_path / "nope.crt"))
    assert missing.returncode == 2 and "cannot read the certificate" in missing.stderr


def test_write_ini_without_tls_has_no_pin_and_unreadable_cert_adds_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    plain = cli(url, "workers", "add", "plain", "--write-ini", str(tmp_path / "plain.ini"))
    assert plain.returncode == 0, plain.stderr
    cfg = load(tmp_path / "plain.ini", environ={})
    assert cfg.server_url.startswith("ws://") and cfg.cert_sha256 is None

    cert, key = self_signed(tmp_path)
    prepare_db(url, {"hub_tls_cert": cert, "hub_tls_key": key})
    Path(cert).write_text("damaged\n")  # replaced on disk after it was set
    broken = cli(url, "workers", "add", "later", "--write-ini", str(tmp_path / "later.ini"))
    assert broken.returncode == 2 and "holds no PEM certificate" in broken.stderr
    assert not (tmp_path / "later.ini").exists()
    listed = cli(url, "workers", "list")
    assert "plain" in listed.stdout and "later" not in listed.stdout


def test_certificate_settings_must_name_files(tmp_path):
    cert = tmp_path / "hub.crt"
    cert.write_text("x")
    for key in ("hub_tls_cert", "hub_tls_key"):
        assert known.DEFAULTS[key] == ""
        assert known.check(key, "") is None  # empty: no TLS
        assert known.check(key, str(cert)) is None
        assert "is not a file here" in known.check(key, str(tmp_path / "missing.pem"))
        assert "is not a file here" in known.check(key, str(tmp_path))  # a folder
