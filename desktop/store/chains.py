"""Chains in the store: definitions (checked for unknown jobs and cycles on save) and firing.

:func:`fire_ended` runs inside the transaction that stores a run's end (hub/commit.py,
queries.transition_run).  A chain fires once per run of its source whatever happens later (a
replayed result, lost then the real result, a console restart): the ``chain_firing`` row,
unique on (chain, source run), is written in that same transaction as the target's run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee

from desktop.core import chains as c
from desktop.core import runs as states
from desktop.core.timeutil import to_naive_utc
from desktop.store import queries
from desktop.store.errors import NotFound
from desktop.store.migrations import write_transaction
from desktop.store.models import Chain, ChainFiring, ChangeCounter, Job, database_proxy
from desktop.store.queries.common import _tuples
from desktop.store.queries.prepared import _by_ids
from desktop.store.records import RunRecord


@dataclass(frozen=True)
class ChainRecord:
    id: int
    source: str
    target: str
    on: str
    args: tuple[str, ...] | None  # None: the target job's own arguments

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"then": self.target, "on": self.on}
        if self.args is not None:
            out["args"] = list(self.args)
        return out


def _records(query) -> list[ChainRecord]:
    names: dict[int, str] = dict(_tuples(Job.select(Job.id, Job.name)))
    return [
        ChainRecord(
            row.id,
            names[row.source_id],
            names[row.target_id],
            row.on_event,
            tuple(json.loads(row.args_json)) if row.args_json is not None else None,
        )
        for row in query
    ]


def list_chains(job_id: int | None = None) -> list[ChainRecord]:
    """Chains out of one job (or all), ordered by target name then event."""
    query = Chain.select()
    if job_id is not None:
        query = query.where(Chain.source == job_id)
    out = _records(query)
    return sorted(out, key=lambda r: (r.source, r.target, c.ON_EVENTS.index(r.on)))


def chains_into(job_id: int) -> list[ChainRecord]:
    return _records(Chain.select().where(Chain.target == job_id))


def check_specs(specs: list[dict]) -> list[tuple[str, str, list[str] | None]]:
    """[{"then": job, "on": event, "args": [...]?}] -> [(target, on, args)]; ChainError."""
    out = []
    seen = set()
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("then"), str):
            raise c.ChainError('a chain is {"then": JOB, "on": "success|failure|end"}')
        on = c.check_on(spec.get("on", c.SUCCESS))
        args = spec.get("args")
        if args is not None:
            if not isinstance(args, list):
                raise c.ChainError("chain args: a list of strings")
            args = c.check_args(args)
        key = (spec["then"], on)
        if key in seen:
            raise c.ChainError(f"chain to {spec['then']} on {on} is named twice")
        seen.add(key)
        out.append((spec["then"], on, args))
    return out


def check_graph(replacing: dict[str, list[str]], names: set[str]) -> None:
    """Refuse unknown targets and cycles: ``replacing`` is {source job: [target jobs]} that
    replaces those jobs' stored chains; ``names`` the jobs that will exist."""
    for source, targets in replacing.items():
        for target in targets:
            if target not in names:
                raise c.ChainError(f"chain from {source}: there is no job {target!r}")
    edges = [(r.source, r.target) for r in list_chains() if r.source not in replacing]
    edges += [(s, t) for s, targets in replacing.items() for t in targets]
    cycle = c.find_cycle(edges)
    if cycle:
        raise c.ChainError("chains would loop: " + " -> ".join(cycle))


def write_chains(job_id: int, parsed: list[tuple[str, str, list[str] | None]], now: datetime):
    Chain.delete().where(Chain.source == job_id).execute()
    ids: dict[str, int] = dict(_tuples(Job.select(Job.name, Job.id)))
    for target, on, args in parsed:
        Chain.create(
            source=job_id,
            target=ids[target],
            on_event=on,
            args_json=json.dumps(args, ensure_ascii=False) if args is not None else None,
            created_at=to_naive_utc(now),
        )


def set_chains(job_id: int, specs: list[dict], now: datetime) -> list[ChainRecord]:
    """Replace the chains out of a job.  Unknown jobs and cycles raise ChainError, nothing
    changes."""
    with write_transaction(database_proxy):
        job = Job.get_or_none(Job.id == job_id)
        if job is None:
            raise NotFound(f"job {job_id} does not exist")
        parsed = check_specs(specs)
        names = {name for (name,) in _tuples(Job.select(Job.name))}
        check_graph({job.name: [t for t, _, _ in parsed]}, names)
        write_chains(job_id, parsed, now)
        ChangeCounter.update(counter_value=ChangeCounter.counter_value + 1).where(
            ChangeCounter.id == 1
        ).execute()
        return list_chains(job_id)


def fire_ended(records: list[RunRecord], now: datetime) -> list[RunRecord]:
    """The target runs for chains whose source run just ended (inside its transaction)."""
    ended = [r for r in records if r.state in c.END_STATES]
    if not ended:
        return []
    by_source: dict[int, list[Chain]] = {}
    # read in every transaction that stores ends: compiled once, models built only for hits
    for row in _by_ids(
        "chains_from",
        lambda ids: Chain.select().where(Chain.source.in_(ids)),
        {r.job_id for r in ended},
    ):
        chain = Chain(
            id=row["id"],
            source=row["source_id"],
            target=row["target_id"],
            on_event=row["on_event"],
            args_json=row["args_json"],
        )
        by_source.setdefault(chain.source_id, []).append(chain)
    out = []
    for run in ended:
        for chain in by_source.get(run.job_id, []):
            if not c.fires(chain.on_event, run.state):
                continue
            record = _fire(chain, run, now)
            if record is not None:
                out.append(record)
    return out


def _fire(chain: Chain, run: RunRecord, now: datetime) -> RunRecord | None:
    try:
        with database_proxy.atomic():  # a savepoint: a duplicate leaves the transaction usable
            firing = ChainFiring.create(
                chain=chain.id, source_run=run.id, created_at=to_naive_utc(now)
            )
    except peewee.IntegrityError:
        return None  # fired already for this run
    args = None
    if chain.args_json is not None:
        args = c.render_args(
            json.loads(chain.args_json), run.id, run.exit_code, run.state, run.job_name
        )
    reason = f"chained: {run.job_name} run {run.id} {run.state} (on {chain.on_event})"
    record = None
    for bump in range(1000):  # the occurrence is now; bumped past a manual run at that instant
        record = queries.create_run(
            chain.target_id,
            now + timedelta(microseconds=bump),
            trigger=states.CHAIN,
            args=args,
            reason=reason,
        )
        if record is not None:
            break
    if record is not None:
        ChainFiring.update(target_run_id=record.id).where(ChainFiring.id == firing.id).execute()
    return record


def fired_for(run_id: int) -> list[tuple[str, int | None]]:
    """(target job, target run id) fired by one run."""
    rows = _tuples(
        ChainFiring.select(ChainFiring.target_run_id, Job.name)
        .join(Chain)
        .join(Job, on=(Chain.target == Job.id))
        .where(ChainFiring.source_run == run_id)
    )
    return [(name, target) for target, name in rows]
