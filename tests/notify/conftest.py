"""Fixtures: a store opened through the console's database thread, and real receivers."""

from __future__ import annotations

import pytest
import pytest_asyncio

from desktop.store.executor import DbExecutor
from tests.notify.receivers import HookReceiver, MailServer
from tests.store.conftest import pg_schema_url  # noqa: F401 - the fixture, by name


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "postgres":
        return request.getfixturevalue("pg_schema_url")
    return f"sqlite:///{tmp_path / 'n.db'}"


@pytest_asyncio.fixture
async def ex(url):
    executor = DbExecutor(url)
    await executor.start()
    try:
        yield executor
    finally:
        await executor.close()


@pytest.fixture
def hook():
    receiver = HookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest_asyncio.fixture
async def mail():
    server = await MailServer().start()
    try:
        yield server
    finally:
        await server.close()


@pytest_asyncio.fixture
async def locked_mail():
    server = await MailServer(password="right").start()
    try:
        yield server
    finally:
        await server.close()
