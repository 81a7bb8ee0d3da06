"""The secrets key: where it lives, and sealing any value with it.

The key never goes into the database (a copy of the database alone opens nothing).  It lives
in the OS keyring (``keyring``: Windows Credential Manager, macOS Keychain, Secret Service)
when one is usable, else in a key file beside the database, 0600 (``<database>.key`` for
SQLite, ``secret-keys/<database id>.key`` in the user's data folder otherwise).
``JOBTRIGGER_SECRET_KEY_BACKEND=file|keyring`` forces one (tests force ``file``);
``JOBTRIGGER_SECRET_KEY_FILE`` names the file (a PostgreSQL database shared by two consoles:
distribute that file to both hosts, see README "Secrets").

What is stored is a short JSON list of keys, the first one seals; the others are old keys kept
while a rotation is under way, so every row opens at every moment of a rotation.

API for other store modules (issue 18 keeps SMTP passwords and webhook secrets this way)::

    from desktop.store import secretkey
    token = secretkey.seal(value, "smtp-password:3")   # in the write transaction
    value = secretkey.open_sealed(token, "smtp-password:3")
    secretkey.register_column(Model, Model.field, lambda row: f"smtp-password:{row.id}")

``register_column`` makes ``secrets rotate-key`` re-seal that column too.  Contexts bind a
sealed value to its row: use the row's id and the field, never something that can change.
Losing the key loses what was sealed, never the rows around it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets as pysecrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.core.secretbox import SecretBox, SecretKeyError, new_key
from desktop.store.models import Setting, database_proxy
from worker import private

log = logging.getLogger(__name__)

SERVICE = "job-trigger"
BACKEND_ENV = "JOBTRIGGER_SECRET_KEY_BACKEND"
FILE_ENV = "JOBTRIGGER_SECRET_KEY_FILE"
DB_ID_KEY = "secrets_database_id"

# (model, field, context(row) -> str): columns holding sealed values, re-sealed by rotation
SEALED_COLUMNS: list[tuple[Any, Any, Callable[[Any], str]]] = []


def register_column(model, field, context: Callable[[Any], str]) -> None:
    if not any(m is model and f is field for m, f, _ in SEALED_COLUMNS):
        SEALED_COLUMNS.append((model, field, context))


@dataclass(frozen=True)
class KeyPlace:
    backend: str  # "keyring" | "file"
    where: str  # the keyring's name, or the file's path

    def describe(self) -> str:
        if self.backend == "keyring":
            return f"OS keyring ({self.where})"
        return f"key file {self.where} (0600)"


def _database_id(create: bool) -> str | None:
    row = Setting.get_or_none(Setting.setting_key == DB_ID_KEY)
    if row is not None:
        return row.setting_value
    if not create:
        return None
    value = pysecrets.token_hex(8)
    Setting.insert(setting_key=DB_ID_KEY, setting_value=value).on_conflict_ignore().execute()
    return Setting.get(Setting.setting_key == DB_ID_KEY).setting_value


def _sqlite_path() -> Path | None:
    import peewee

    db = database_proxy.obj
    if isinstance(db, peewee.SqliteDatabase) and db.database != ":memory:":
        return Path(db.database)
    return None


def _keyring_usable() -> str | None:
    """The name of a usable OS keyring, or None (headless Linux has none)."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        ring = keyring.get_keyring()
    except Exception:
        return None
    if isinstance(ring, fail.Keyring) or getattr(ring, "priority", 0) <= 0:
        return None
    return type(ring).__module__ + "." + type(ring).__name__


def place(create: bool = True) -> KeyPlace:
    """Where this database's key is (or would be) kept."""
    forced = os.environ.get(BACKEND_ENV, "").strip().lower()
    if forced not in ("", "file", "keyring"):
        raise SecretKeyError(f"{BACKEND_ENV} must be 'file' or 'keyring', not {forced!r}")
    ring = None if forced == "file" else _keyring_usable()
    if forced == "keyring" and ring is None:
        raise SecretKeyError(f"{BACKEND_ENV}=keyring but no usable OS keyring was found")
    db_id = _database_id(create) or "new"
    if ring is not None:
        return KeyPlace("keyring", f"{ring}, service {SERVICE!r}, entry 'database {db_id}'")
    override = os.environ.get(FILE_ENV, "").strip()
    if override:
        return KeyPlace("file", str(Path(override).expanduser()))
    sqlite = _sqlite_path()
    if sqlite is not None:
        return KeyPlace("file", str(sqlite) + ".key")
    import platformdirs

    folder = Path(platformdirs.user_data_dir("JobTrigger", appauthor=False)) / "secret-keys"
    return KeyPlace("file", str(folder / f"{db_id}.key"))


def _entry() -> str:
    return f"database {_database_id(True)}"


def _encode(keys: list[bytes]) -> str:
    return json.dumps({"keys": [base64.b64encode(k).decode("ascii") for k in keys]})


def _decode(text: str, where: str) -> list[bytes]:
    try:
        keys = [base64.b64decode(k, validate=True) for k in json.loads(text)["keys"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise SecretKeyError(f"the secrets key in {where} is damaged: {exc}") from None
    if not keys:
        raise SecretKeyError(f"the secrets key in {where} is empty")
    return keys


def read_keys(spot: KeyPlace | None = None) -> list[bytes] | None:
    spot = spot or place()
    if spot.backend == "keyring":
        import keyring

        text = keyring.get_password(SERVICE, _entry())
    else:
        path = Path(spot.where)
        if not path.exists():
            return None
        private.tighten(path)
        text = path.read_text(encoding="utf-8")
    return None if text is None else _decode(text, spot.describe())


def write_keys(keys: list[bytes], spot: KeyPlace | None = None) -> None:
    """Replace the stored keys at once (a crash leaves the old list or the new one)."""
    spot = spot or place()
    if spot.backend == "keyring":
        import keyring

        keyring.set_password(SERVICE, _entry(), _encode(keys))
        return
    path = Path(spot.where)
    if not path.parent.exists():
        private.private_folder(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", opener=private.opener) as f:
        f.write(_encode(keys))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def box(create: bool = False) -> SecretBox:
    """The box for this database: SecretKeyError when there is no key (and CREATE is false)."""
    spot = place()
    keys = read_keys(spot)
    if keys is None:
        if not create or _anything_sealed():
            raise SecretKeyError(
                f"no secrets key in {spot.describe()}: the secrets of this database cannot be "
                "opened (restore the key file or keyring entry, or `secrets unset` them and "
                "set them again)"
            )
        keys = [new_key()]
        write_keys(keys, spot)
        log.info("created a new secrets key in %s", spot.describe())
    return SecretBox(keys)


def _anything_sealed() -> bool:
    # "" is no value (a channel without a password): nothing sealed there needs a key
    return any(
        model.select().where(field.is_null(False) & (field != "")).exists()
        for model, field, _ in SEALED_COLUMNS
    )


def check_matches(box: SecretBox) -> None:
    """SecretKeyError unless BOX opens every sealed value's key: sealing a new value with a
    wrong key would leave a database whose values need two different keys."""
    from desktop.core.secretbox import sealed_key_id

    ids = set(box.key_ids())
    for model, field, _ in SEALED_COLUMNS:
        for (token,) in model.select(field).where(field.is_null(False)).tuples():
            kid = sealed_key_id(token)
            if kid and kid not in ids:
                raise SecretKeyError(
                    f"the stored values were sealed with key {kid}, but the key in "
                    f"{place().describe()} is {', '.join(sorted(ids))}: restore the right key"
                )


def seal(value: str, context: str) -> str:
    return box(create=True).seal(value, context)


def open_sealed(token: str, context: str) -> str:
    return box().open(token, context)
