"""Masking in the hub's commit (real store): a secret split across two frames is stored and
published as ***, nothing of it shown early; a replay does not feed the masker twice; what a
stream held back is released when the run ends; after a console restart the values come from
the store."""

from __future__ import annotations

import pytest

from desktop.hub.commit import commit_batch, commit_isolated
from desktop.hub.masks import RunMasks
from desktop.hub.session import StoreFinished, StoreStarted
from desktop.store import queries
from desktop.store import secrets as js
from desktop.store.db import open_store
from tests.hub.test_commit import dispatched, out
from tests.store.conftest import pg_schema_url  # noqa: F401 - the fixture, by name

SECRET = "correct-horse-battery"


@pytest.fixture(autouse=True)
def key_file(tmp_path, monkeypatch):
    monkeypatch.setenv("JOBTRIGGER_SECRET_KEY_FILE", str(tmp_path / "k.key"))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "postgres":
        url = request.getfixturevalue("pg_schema_url")
    else:
        url = f"sqlite:///{tmp_path / 'c.db'}"
    database = open_store(url)
    job = queries.create_job({"name": "j", "script": "a.py", "schedule": {"kind": "manual"}})
    yield job.id
    database.close()


def committed(items, masks):
    result = commit_isolated(items, masks)
    masks.apply(result.mask_held, result.mask_learned)  # what the server does after a commit
    for record in result.ended:
        masks.forget(record.id)
    return result


def test_a_secret_split_across_two_frames_is_stored_and_published_masked(store):
    run = dispatched(store, 1)
    masks = RunMasks()
    masks.remember(run, [SECRET])
    first = committed(
        [("w1", StoreStarted(run, 1, 1.7e9)), out(run, 2, "key=" + SECRET[:9])], masks
    )
    # nothing of the secret is published or stored yet
    assert [c.text for c in first.new_output] == ["key="]
    assert [c.text for c in queries.read_output(run)] == ["key="]
    second = committed([out(run, 3, SECRET[9:] + " ok\n")], masks)
    assert [c.text for c in second.new_output] == ["*** ok\n"]
    # a replay of both frames changes nothing and does not feed the masker again
    committed([out(run, 2, "key=" + SECRET[:9]), out(run, 3, SECRET[9:] + " ok\n")], masks)
    assert "".join(c.text for c in queries.read_output(run)) == "key=*** ok\n"


def test_what_a_stream_held_back_is_released_when_the_run_ends(store):
    run = dispatched(store, 1)
    masks = RunMasks()
    masks.remember(run, [SECRET])
    committed([("w1", StoreStarted(run, 1, 1.7e9)), out(run, 2, "tail corr")], masks)
    assert "".join(c.text for c in queries.read_output(run)) == "tail "
    committed([("w1", StoreFinished(run, 3, "succeeded", 0, "", 1.7e9))], masks)
    assert "".join(c.text for c in queries.read_output(run)) == "tail corr"
    assert masks.held_of_run(run) == {}


def test_after_a_restart_the_values_come_from_the_store(store):
    js.apply_changes(store, {"API_KEY": SECRET}, "t")
    run = dispatched(store, 1)
    masks = RunMasks()  # a console that started after the dispatch: it knows no values
    committed([("w1", StoreStarted(run, 1, 1.7e9)), out(run, 2, f"{SECRET}\n")], masks)
    assert [c.text for c in queries.read_output(run)] == ["***\n"]


def test_without_masks_output_is_stored_as_sent(store):
    run = dispatched(store, 1)
    commit_batch([("w1", StoreStarted(run, 1, 1.7e9)), out(run, 2, SECRET)])
    assert [c.text for c in queries.read_output(run)] == [SECRET]


def test_a_secret_in_a_workers_reason_is_masked_too(store):
    run = dispatched(store, 1)
    masks = RunMasks()
    masks.remember(run, [SECRET])
    committed([("w1", StoreStarted(run, 1, 1.7e9))], masks)
    committed([("w1", StoreFinished(run, 2, "failed", 1, f"error: bad {SECRET}", 1.7e9))], masks)
    assert queries.get_run(run).reason == "error: bad ***"
