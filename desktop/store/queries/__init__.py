"""The store's operations: plain synchronous functions, each one transaction, run on the
database thread (``await executor.call(queries.create_job, spec)``) or directly by the CLI.

They take and return plain values (records.py, aware UTC datetimes) and raise ValidationError,
NotFound, Conflict, AuthError or TransitionError for input the caller must reject.

Conventions the callers rely on:
- ``change_marker()`` grows with every job, worker and setting change, from any process.
- A run's ``last_seq`` is the highest worker message seq committed for it: ``append_output``
  advances it for output, ``transition_run(..., seq=N)`` or ``advance_seq`` for started/finished.
- Audit events are written in the same transaction as the change they describe.

This module is the package's face: every operation is re-exported here by name, so callers
write ``queries.create_job(...)`` and need not know which module holds it.  Each record family
has its own module (jobs, runs, output, workers, settings, audit, retention); the shared helpers
are in common.py and the compiled-statement cache in prepared.py.  A new operation goes in its
family's module and gets a line here.
"""

from desktop.store.queries.audit import (
    list_audit,
)
from desktop.store.queries.common import (
    change_marker,
)
from desktop.store.queries.jobs import (
    create_job,
    delete_job,
    diff_specs,
    due_jobs,
    earliest_next_fire,
    get_job,
    get_job_by_name,
    import_jobs,
    job_names,
    jobs_by_ids,
    jobs_with_last_run,
    list_jobs,
    list_jobs_page,
    max_retries_of,
    set_job_enabled,
    set_next_fire,
    update_job,
)
from desktop.store.queries.output import (
    append_output,
    append_to_chunk,
    read_output,
    truncation_marker,
)
from desktop.store.queries.retention import (
    prune,
)
from desktop.store.queries.runs import (
    active_run_states,
    active_runs,
    advance_seq,
    count_runs,
    create_manual_runs,
    create_run,
    dispatch_returning,
    get_run,
    list_runs,
    mark_dispatched,
    record_after_writes,
    record_missed,
    run_owners,
    runs_by_ids,
    runs_for_reports,
    runs_owed_a_retry,
    states_of_runs,
    transition_run,
    update_many_runs,
    update_runs,
)
from desktop.store.queries.settings import (
    all_settings,
    get_setting,
    set_setting,
)
from desktop.store.queries.workers import (
    Hello,
    add_worker,
    admit_workers,
    authenticate_worker,
    get_worker,
    list_workers,
    list_workers_page,
    revoke_worker,
    rotate_token,
    set_worker_config,
    set_worker_enabled,
    set_worker_scripts,
)

__all__ = [
    "Hello",
    "active_run_states",
    "active_runs",
    "add_worker",
    "admit_workers",
    "advance_seq",
    "all_settings",
    "append_output",
    "append_to_chunk",
    "authenticate_worker",
    "change_marker",
    "count_runs",
    "create_job",
    "create_manual_runs",
    "create_run",
    "delete_job",
    "diff_specs",
    "dispatch_returning",
    "due_jobs",
    "earliest_next_fire",
    "get_job",
    "get_job_by_name",
    "get_run",
    "get_setting",
    "get_worker",
    "import_jobs",
    "job_names",
    "jobs_by_ids",
    "jobs_with_last_run",
    "list_audit",
    "list_jobs",
    "list_jobs_page",
    "list_runs",
    "list_workers",
    "list_workers_page",
    "mark_dispatched",
    "max_retries_of",
    "prune",
    "read_output",
    "record_after_writes",
    "record_missed",
    "revoke_worker",
    "rotate_token",
    "run_owners",
    "runs_by_ids",
    "runs_for_reports",
    "runs_owed_a_retry",
    "set_job_enabled",
    "set_next_fire",
    "set_setting",
    "set_worker_config",
    "set_worker_enabled",
    "set_worker_scripts",
    "states_of_runs",
    "transition_run",
    "truncation_marker",
    "update_job",
    "update_many_runs",
    "update_runs",
]
