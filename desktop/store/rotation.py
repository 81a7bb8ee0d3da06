"""``secrets rotate-key``: a new key, every sealed value re-sealed with it in ONE transaction.

The order is what makes a crash at any moment lose nothing:

1. the new key is added to the stored keys, behind the current one (which still seals);
2. one transaction re-seals every registered column (secretkey.SEALED_COLUMNS) with it;
3. the stored keys become the new key alone.

Killed before 2 commits: the rows are as they were and the old key still opens them.  Killed
between 2 and 3: the rows name the new key, which is stored too.  Either way every value
opens, and running the command again finishes the job.

``JOBTRIGGER_TEST_ROTATE_HOOK=stage:path`` (tests only) makes the process write PATH and wait
at a stage ("mid": half the rows re-sealed in the open transaction, "committed"), so a test can
kill it there with SIGKILL.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from desktop.core.secretbox import SecretBox, SecretKeyError, new_key, sealed_key_id
from desktop.store import channels, secretkey  # noqa: F401 - channels registers its column
from desktop.store import secrets as _job_secrets  # noqa: F401 - registers its column
from desktop.store.migrations import write_transaction
from desktop.store.models import database_proxy

log = logging.getLogger(__name__)

HOOK_ENV = "JOBTRIGGER_TEST_ROTATE_HOOK"


@dataclass(frozen=True)
class Rotated:
    resealed: int
    old_key_ids: list[str]
    new_key_id: str
    where: str


def _hook(stage: str) -> None:
    spec = os.environ.get(HOOK_ENV, "")
    if not spec.startswith(stage + ":"):
        return
    Path(spec.split(":", 1)[1]).write_text(stage)
    time.sleep(600)  # the test kills the process here


def _rows():
    for model, field, context in secretkey.SEALED_COLUMNS:
        for row in model.select():
            token = getattr(row, field.name)
            if token:
                yield model, field, context, row, token


def rotate_key() -> Rotated:
    spot = secretkey.place()
    keys = secretkey.read_keys(spot)
    if keys is None:
        if any(True for _ in _rows()):
            raise SecretKeyError(
                f"no secrets key in {spot.describe()}, but sealed values exist: restore the "
                "key first (nothing was changed)"
            )
        keys = []
    old = SecretBox(keys) if keys else None
    # Everything must open before anything is written: a wrong key changes nothing.
    with database_proxy.atomic():
        for _, _, context, row, token in _rows():
            if old is None:
                raise SecretKeyError("sealed values exist but there is no key")
            old.open(token, context(row))
    fresh = new_key()
    secretkey.write_keys([*keys, fresh], spot)  # 1: the new key, not yet sealing
    both = SecretBox([fresh, *keys])
    count = 0
    with write_transaction(database_proxy):  # 2: every value, one transaction
        rows = list(_rows())
        for i, (model, field, context, row, token) in enumerate(rows):
            sealed = both.seal(both.open(token, context(row)), context(row))
            values = {field: sealed}
            if "key_id" in model._meta.fields:
                values[model._meta.fields["key_id"]] = sealed_key_id(sealed)
            pk = model._meta.primary_key
            model.update(values).where(pk == getattr(row, pk.name)).execute()
            count += 1
            if i == len(rows) // 2:
                _hook("mid")
    _hook("committed")
    secretkey.write_keys([fresh], spot)  # 3: the old keys go
    old_ids = old.key_ids() if old else []
    log.info("secrets key rotated: %d values re-sealed with key %s", count, both.key_id)
    return Rotated(count, old_ids, both.key_id, spot.describe())
