"""Fixtures: a running TestHub and a worker folder (config + copied test scripts)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.worker.hubfixture import TestHub

SCRIPTS = Path(__file__).parent / "scripts"


@pytest_asyncio.fixture
async def hub() -> AsyncIterator[TestHub]:
    hub = TestHub()
    await hub.start()
    yield hub
    if hub.server is not None:
        await hub.stop()


@pytest.fixture
def worker_dir(tmp_path: Path) -> Path:
    shutil.copytree(SCRIPTS, tmp_path / "scripts")
    return tmp_path
