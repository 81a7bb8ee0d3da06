"""Settings: the stored values over settings.DEFAULTS, each change audited."""

from __future__ import annotations

from typing import Any

from desktop.store import settings as settings_mod
from desktop.store.errors import ValidationError
from desktop.store.models import Setting
from desktop.store.queries.common import _audit, _bump, _read, _short, _tuples, _write


def _display_tz() -> str:
    row = Setting.get_or_none(Setting.setting_key == "display_tz")
    return row.setting_value if row else settings_mod.DEFAULTS["display_tz"]


def get_setting(key: str, default: str | None = None) -> str | None:
    """The stored value, else ``default``, else the known default (settings.DEFAULTS)."""
    row = Setting.get_or_none(Setting.setting_key == key)
    if row is not None:
        return row.setting_value
    return default if default is not None else settings_mod.DEFAULTS.get(key)


def _known_setting(key: str) -> str:
    """get_setting for a key with a default in settings.DEFAULTS: never None."""
    value = get_setting(key)
    if value is None:
        raise KeyError(f"{key!r} is not a known setting")
    return value


def set_setting(key: str, value: Any, actor: str = "console") -> None:
    value = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    problem = settings_mod.check(key, value)
    if problem:
        raise ValidationError({key: problem})
    with _write():
        row = Setting.get_or_none(Setting.setting_key == key)
        if row is not None and row.setting_value == value:
            return
        old = row.setting_value if row else settings_mod.DEFAULTS.get(key)
        if row is None:
            Setting.create(setting_key=key, setting_value=value)
        else:
            Setting.update(setting_value=value).where(Setting.setting_key == key).execute()
        _audit(actor, "updated", "setting", key, f"{_short(old)} -> {_short(value)}")
        _bump()


def all_settings() -> dict[str, str]:
    """Every known setting with its default, overlaid by what is stored."""
    with _read():
        stored = {
            k: v for k, v in _tuples(Setting.select(Setting.setting_key, Setting.setting_value))
        }
    return {**settings_mod.DEFAULTS, **stored}
