import pytest

from desktop.store import queries as q
from desktop.store.errors import AuthError, NotFound, ValidationError
from tests.store.helpers import T0


def test_add_and_authenticate(db):
    worker, token = q.add_worker("win-01", tags=["windows", "dc"], slots=2, actor="alice")
    assert worker.tags == ("dc", "windows") and worker.slots == 2 and worker.enabled
    assert len(token) >= 40
    assert q.authenticate_worker("win-01", token).name == "win-01"
    # only a hash is stored
    from desktop.store.models import Worker

    assert token not in Worker.get(Worker.name == "win-01").token_hash
    assert q.list_audit()[0].entity_kind == "worker"


@pytest.mark.parametrize(
    "name, tags, slots, field",
    [("", [], 1, "name"), ("../x", [], 1, "name"), ("ok", [""], 1, "tags"), ("ok", [], 0, "slots")],
)
def test_bad_worker_input(db, name, tags, slots, field):
    with pytest.raises(ValidationError) as info:
        q.add_worker(name, tags=tags, slots=slots)
    assert field in info.value.errors
    assert q.list_workers() == []


def test_duplicate_worker_refused(db):
    q.add_worker("w")
    with pytest.raises(ValidationError):
        q.add_worker("w")


def test_auth_codes(db):
    _, token = q.add_worker("w")
    with pytest.raises(AuthError) as info:
        q.authenticate_worker("nobody", token)
    assert info.value.code == "unknown"
    with pytest.raises(AuthError) as info:
        q.authenticate_worker("w", token + "x")
    assert info.value.code == "bad_token"
    q.set_worker_enabled("w", False)
    with pytest.raises(AuthError) as info:
        q.authenticate_worker("w", token)
    assert info.value.code == "disabled"
    q.set_worker_enabled("w", True)
    q.revoke_worker("w", actor="alice")
    with pytest.raises(AuthError) as info:
        q.authenticate_worker("w", token)
    assert info.value.code == "revoked" and "new token" in info.value.reason


def test_rotate_token_replaces_old_and_lifts_revocation(db):
    _, old = q.add_worker("w")
    q.revoke_worker("w")
    new = q.rotate_token("w")
    assert new != old
    assert q.authenticate_worker("w", new).revoked_at is None
    with pytest.raises(AuthError):
        q.authenticate_worker("w", old)


def test_set_worker_config_changes_tags_and_slots_with_an_audit_entry(db):
    q.add_worker("w", tags=["a"], slots=1)
    before = q.change_marker()
    record = q.set_worker_config("w", tags=["prod", " b "], slots=3, actor="cli")
    assert (record.tags, record.slots) == (("b", "prod"), 3)
    assert q.change_marker() > before  # a running console notices
    entry = q.list_audit(1)[0]
    assert (entry.actor, entry.action, entry.entity_name) == ("cli", "updated", "w")
    assert q.set_worker_config("w", slots=5).tags == ("b", "prod")  # None keeps
    assert q.set_worker_config("w", tags=[]).tags == ()
    for bad in ({"slots": 0}, {"slots": 1001}, {"tags": ["x" * 101]}, {"tags": [""]}):
        with pytest.raises(ValidationError):
            q.set_worker_config("w", **bad)
    assert q.get_worker("w").slots == 5  # refused input changed nothing
    with pytest.raises(NotFound):
        q.set_worker_config("ghost", slots=2)


def test_missing_worker_operations_are_not_found(db):
    assert q.get_worker("ghost") is None
    for call in (q.revoke_worker, q.rotate_token):
        with pytest.raises(NotFound):
            call("ghost")
    with pytest.raises(NotFound):
        q.set_worker_enabled("ghost", False)


def test_admit_workers_checks_each_hello_as_authenticate_does_and_records_the_admitted(db):
    _, good = q.add_worker("good", tags=["a"], slots=2)
    _, other = q.add_worker("other")
    _, off = q.add_worker("off")
    _, gone = q.add_worker("gone")
    q.set_worker_enabled("off", False)
    q.revoke_worker("gone")
    scripts = [{"name": "backup.py", "sha256": "ab" * 32}]

    def hello(name, token):
        return q.Hello(name, token, f"{name}-host", "Linux", "1.0", scripts)

    hellos = [
        hello("good", good),
        hello("nobody", good),
        hello("other", good),  # another worker's token
        hello("off", off),
        hello("gone", gone),
        hello("other", other),
    ]
    out = q.admit_workers(hellos, T0)
    assert [r.name if not isinstance(r, AuthError) else r.code for r in out] == [
        "good",
        "unknown",
        "bad_token",
        "disabled",
        "revoked",
        "other",
    ]
    # each admitted hello is recorded, never its tags or slots; refused ones not
    seen = {w.name: w for w in q.list_workers()}
    assert (seen["good"].host, seen["good"].last_seen_at) == ("good-host", T0)
    assert seen["good"].scripts == tuple(scripts) and seen["good"].tags == ("a",)
    assert seen["other"].host == "other-host"
    assert seen["off"].host == "" and seen["off"].last_seen_at is None
    assert seen["gone"].last_seen_at is None


def test_admit_workers_handles_more_hellos_than_one_in_list(db):
    from desktop.store.queries.prepared import IN_BATCH

    tokens = {f"w{i}": q.add_worker(f"w{i}")[1] for i in range(IN_BATCH + 3)}
    hellos = [q.Hello(n, t, "h", "o", "v", []) for n, t in tokens.items()]
    out = q.admit_workers(hellos, T0)
    assert [r.name for r in out] == list(tokens)


def test_list_workers_reads_every_column_as_the_models_do(db):
    """The raw-row read (no peewee conversion) gives the same records as the model path."""
    from desktop.store.models import Worker
    from desktop.store.queries.workers import _worker_from

    _, token = q.add_worker("b-seen", tags=["x", "y"], slots=3)
    q.add_worker("a-plain")
    q.add_worker("c-off")
    q.set_worker_enabled("c-off", False)
    q.revoke_worker("a-plain")
    scripts = [{"name": "s.py", "sha256": "0" * 64}]
    q.admit_workers([q.Hello("b-seen", token, "host", "linux", "1.2", scripts)], T0)
    expected = [_worker_from(w) for w in Worker.select().order_by(Worker.name)]
    assert q.list_workers() == expected
    seen = q.list_workers()[1]
    assert seen.last_seen_at == T0 and seen.last_seen_at.tzinfo is not None
    assert seen.scripts == tuple(scripts) and seen.tags == ("x", "y")
    assert q.list_workers()[0].revoked and not q.list_workers()[2].enabled


def test_list_workers_page_walks_the_names_in_order(db):
    names = [f"w{i:02d}" for i in range(7)]
    for name in reversed(names):
        q.add_worker(name)
    pages, after = [], ""
    while True:
        page = q.list_workers_page(after, 3)
        pages.append([w.name for w in page])
        if len(page) < 3:
            break
        after = page[-1].name
    assert pages == [names[0:3], names[3:6], names[6:7]]
    assert [w for p in pages for w in p] == [w.name for w in q.list_workers()]
    assert q.list_workers_page(names[-1], 3) == []
