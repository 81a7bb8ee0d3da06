"""The indexed worker snapshot chooses exactly as the plain rule does, whatever the workers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from desktop.scheduler.decisions import WorkerView
from desktop.scheduler.pool import WorkerPool

NAMES = st.text(alphabet="abcXY_9", min_size=1, max_size=4)
SCRIPTS = st.frozensets(st.sampled_from(["a.py", "b.sh", "c.ps1"]), max_size=3)
TAGS = st.frozensets(st.sampled_from(["prod", "db", "win"]), max_size=3)


@st.composite
def fleets(draw):
    names = draw(st.lists(NAMES, unique=True, max_size=12))
    workers = []
    for name in names:
        slots = draw(st.integers(1, 4))
        busy = draw(st.integers(0, slots + 1))  # a worker may even be over its slots
        workers.append(WorkerView(name, draw(TAGS), draw(SCRIPTS), slots, busy))
    return workers


def reference(kind: str, value: str, script: str, workers, exclude) -> str | None:
    """The rule as a plain scan, no index."""
    free = [
        w
        for w in workers
        if script in w.scripts
        and (kind != "worker" or w.name == value)
        and (kind != "tag" or value in w.tags)
        and w.busy < w.slots
        and w.name not in exclude
    ]
    if not free:
        return None
    return min(free, key=lambda w: (w.busy / w.slots, w.busy, w.name)).name


@settings(max_examples=400, deadline=None)
@given(
    fleets(),
    st.sampled_from(["any", "tag", "worker"]),
    st.sampled_from(["prod", "db", "a", "b", "X"]),
    st.sampled_from(["a.py", "b.sh", "c.ps1"]),
    st.data(),
)
def test_choice_is_the_plain_rules_choice(workers, kind, value, script, data):
    exclude = data.draw(st.sets(st.sampled_from([w.name for w in workers] or ["-"])))
    busy = {w.name: w.busy for w in workers}
    got = WorkerPool(workers).choose(kind, value, script, busy, exclude)
    assert got == reference(kind, value, script, workers, exclude)


def test_eligible_lists_in_name_order_and_respects_the_target():
    workers = [
        WorkerView("b", frozenset({"prod"}), frozenset({"a.py"}), 1, 0),
        WorkerView("a", frozenset(), frozenset({"a.py"}), 1, 0),
        WorkerView("c", frozenset({"prod"}), frozenset({"b.sh"}), 1, 0),
    ]
    pool = WorkerPool(workers)
    assert [w.name for w in pool.eligible("any", "", "a.py")] == ["a", "b"]
    assert [w.name for w in pool.eligible("tag", "prod", "a.py")] == ["b"]
    assert [w.name for w in pool.eligible("worker", "c", "a.py")] == []
    assert [w.name for w in pool.eligible("worker", "c", "b.sh")] == ["c"]
    assert [w.name for w in pool] == ["a", "b", "c"] and len(pool) == 3


def test_an_idle_worker_ends_the_scan_but_busy_ones_are_compared():
    workers = [WorkerView(f"w{i:05d}", frozenset(), frozenset({"a.py"}), 2, 1) for i in range(50)]
    workers.append(WorkerView("w99999", frozenset(), frozenset({"a.py"}), 4, 1))  # 1/4 busy
    busy = {w.name: w.busy for w in workers}
    pool = WorkerPool(workers)
    assert pool.choose("any", "", "a.py", busy) == "w99999"
    busy["w00007"] = 0
    assert pool.choose("any", "", "a.py", busy) == "w00007"
