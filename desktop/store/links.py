"""A job's notification rules and chains saved together (the editor's Save, an import): one
transaction, all checked before anything is written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from desktop.core import chains as c
from desktop.core import notify as n
from desktop.store import chains, channels
from desktop.store.errors import NotFound
from desktop.store.migrations import write_transaction
from desktop.store.models import Job, database_proxy
from desktop.store.queries.common import _tuples

LINK_KEYS = ("notify", "chains")


def job_links(job_id: int) -> dict[str, list]:
    return {
        "notify": channels.rules_spec(job_id),
        "chains": [r.spec() for r in chains.list_chains(job_id)],
    }


def save_links(job_id: int, rules: list[dict], chain_specs: list[dict], now: datetime) -> None:
    """Replace a job's rules and chains; ChannelError / ChainError change nothing."""
    with write_transaction(database_proxy):
        if not Job.select().where(Job.id == job_id).exists():
            raise NotFound(f"job {job_id} does not exist")
        channels.set_rules(job_id, rules)
        chains.set_chains(job_id, chain_specs, now)


def split_specs(specs: list[Any]) -> tuple[list[Any], dict[str, dict[str, list]]]:
    """Job specs of an export file without their links, and {job name: links} for the jobs
    that carry them (a version 1 file carries none: their links are left alone)."""
    plain, links = [], {}
    for spec in specs:
        if isinstance(spec, dict) and any(k in spec for k in LINK_KEYS):
            spec = dict(spec)
            found = {k: spec.pop(k, None) or [] for k in LINK_KEYS}
            if isinstance(spec.get("name"), str):
                links[spec["name"]] = found
        plain.append(spec)
    return plain, links


def check_import(links: dict[str, dict[str, list]], file_jobs: set[str]) -> list[str]:
    """Problems with the links of an import (unknown channels, chains to jobs that will not
    exist, cycles), as lines; empty when fine."""
    problems = []
    names = {name for (name,) in _tuples(Job.select(Job.name))} | file_jobs
    targets: dict[str, list[str]] = {}
    for job, found in sorted(links.items()):
        try:
            channels.check_rules(found["notify"])
        except n.ChannelError as exc:
            problems.append(f"{job}: notify: {exc}")
        try:
            parsed = chains.check_specs(found["chains"])
            targets[job] = [t for t, _, _ in parsed]
        except c.ChainError as exc:
            problems.append(f"{job}: chains: {exc}")
    if not problems:
        try:
            chains.check_graph(targets, names)
        except c.ChainError as exc:
            problems.append(str(exc))
    return problems


def apply_import(links: dict[str, dict[str, list]], now: datetime) -> None:
    """Write checked links (after the jobs were imported, in the same transaction)."""
    ids: dict[str, int] = dict(_tuples(Job.select(Job.name, Job.id)))
    for job, found in links.items():
        channels.set_rules(ids[job], found["notify"])
        chains.write_chains(ids[job], chains.check_specs(found["chains"]), now)


def save_job_with_links(
    spec: dict,
    job_id: int | None,
    rules: list[dict],
    chain_specs: list[dict],
    now: datetime,
    actor: str = "console",
):
    """The editor's Save: the job and its links in ONE transaction."""
    from desktop.store import queries

    with write_transaction(database_proxy):
        if job_id is None:
            record = queries.create_job(spec, actor)
        else:
            record = queries.update_job(job_id, spec, actor)
        save_links(record.id, rules, chain_specs, now)
        return record
