"""The rules every front end shares, for callers above the store (desktop/ui above all, which
may not import desktop.store): the same job-spec check and setting checks the store applies on
write and the CLI uses, and the errors they raise.  Re-exported, not copied, so there is one
rule and one exception type whichever door a change comes through."""

from __future__ import annotations

from desktop.store.errors import StoreError, ValidationError
from desktop.store.settings import DEFAULTS as SETTING_DEFAULTS
from desktop.store.settings import check as check_setting
from desktop.store.validation import normalize_job_spec

__all__ = [
    "SETTING_DEFAULTS",
    "StoreError",
    "ValidationError",
    "check_setting",
    "normalize_job_spec",
]
