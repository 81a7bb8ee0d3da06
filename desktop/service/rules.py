"""The rules every front end shares, for callers above the store (desktop/ui above all, which
may not import desktop.store or desktop.hub): the job-spec check and the setting checks the
store applies on write and the CLI uses, the errors they raise, and the advice shown for a
worker whose token crosses the network in clear.  Re-exported, not copied: one rule and one
exception type whichever door a change comes through."""

from __future__ import annotations

from desktop.hub.cleartext import ADVICE as IN_CLEAR_ADVICE
from desktop.store.errors import StoreError, ValidationError
from desktop.store.settings import DEFAULTS as SETTING_DEFAULTS
from desktop.store.settings import check as check_setting
from desktop.store.validation import normalize_job_spec

__all__ = [
    "IN_CLEAR_ADVICE",
    "SETTING_DEFAULTS",
    "StoreError",
    "ValidationError",
    "check_setting",
    "normalize_job_spec",
]
