"""TLS: with a certificate and key in the settings the hub speaks wss://, and a worker that
trusts the certificate (here through SSL_CERT_FILE) runs jobs over it."""

from __future__ import annotations

import json
import os
import ssl
import subprocess

import pytest
from websockets.asyncio.client import connect

from desktop.service import Core
from desktop.store import queries
from tests.e2e.conftest import FAST, WorkerProcs, prepare_db, wait_until

pytestmark = pytest.mark.asyncio


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


async def test_wss_hub_with_a_real_worker(tmp_path):
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
        token = await core.add_worker("secure")
        workers.prepare("secure", core.hub_url, token)
        workers.start("secure", env={**os.environ, "SSL_CERT_FILE": cert})
        job = await core.save_job(
            {
                "name": "t",
                "script": "test_job.py",
                "args": ["0", "1", "0"],
                "schedule": {"kind": "manual"},
            }
        )
        run_id = await core.run_now(job.id)

        async def done():
            r = await core.db.call(queries.get_run, run_id)
            return r.state == "succeeded" and r

        record = await wait_until(core, done, 30, "the run over wss")
        assert record.worker_name == "secure"
        context = ssl.create_default_context(cafile=cert)
        async with connect(core.hub_url, ssl=context) as ws:
            await ws.send(json.dumps({"type": "heartbeat", "v": 1}))
            reply = json.loads(await ws.recv())
        assert reply["type"] == "reject" and "first message must be hello" in reply["reason"]
    finally:
        workers.stop_all()
        await core.stop()
