"""The layering of docs/ARCHITECTURE.md, checked on the source: imports are read with `ast`
(nothing is imported, so a module that would drag Qt in is caught without loading Qt), including
imports inside functions and under TYPE_CHECKING.

Each rule names the files it covers and the imports they may not make.  The second test breaks
every rule in a scratch tree and checks each one is reported, so a rule cannot silently match
nothing."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

QT = ("PySide6", "shiboken6", "qasync")
DATABASE = ("peewee", "playhouse", "psycopg2")
# what the hub's session (the protocol state machine) may not touch: sockets, files, processes,
# the database, the event loop.  It gets frames and returns frames; server.py does the I/O.
IO = (
    "asyncio",
    "socket",
    "ssl",
    "select",
    "selectors",
    "subprocess",
    "os",
    "pathlib",
    "io",
    "shutil",
    "tempfile",
    "threading",
    "websockets",
    "psutil",
    "urllib",
    "http",
    "desktop.store",
    "desktop.hub.server",
    *DATABASE,
)
# the layers above the core packages: nothing below may import them (no import runs back up)
UPPER = ("desktop.service", "desktop.ui", "desktop.app", "desktop.cli", "desktop.headless")


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class Rule:
    text: str
    covers: Callable[[str], bool]  # path relative to the root, with forward slashes
    forbidden: Callable[[str], bool]  # an imported module's dotted name


RULES = (
    Rule(
        "desktop/core imports nothing of desktop outside core, no Qt, database or websockets",
        lambda p: p.startswith("desktop/core/"),
        lambda m: (
            (under(m, ("desktop",)) and not under(m, ("desktop.core",)))
            or under(m, (*QT, *DATABASE, "websockets"))
        ),
    ),
    Rule(
        "worker imports nothing of desktop, Qt or the database",
        lambda p: p.startswith("worker/"),
        lambda m: under(m, ("desktop", *QT, *DATABASE)),
    ),
    Rule(
        "only desktop/ui imports Qt (PySide6, qasync)",
        lambda p: not p.startswith("desktop/ui/"),
        lambda m: under(m, QT),
    ),
    Rule(
        "only desktop/store imports the database driver (peewee)",
        lambda p: not p.startswith("desktop/store/"),
        lambda m: under(m, DATABASE),
    ),
    Rule(
        "desktop/ui talks to the service layer only: no desktop.store, hub or scheduler",
        lambda p: p.startswith("desktop/ui/"),
        lambda m: under(m, ("desktop.store", "desktop.hub", "desktop.scheduler")),
    ),
    Rule(
        "the hub's session.py is I/O-free",
        lambda p: p == "desktop/hub/session.py",
        lambda m: under(m, IO),
    ),
    Rule(
        "core, store, hub and scheduler import nothing above them",
        lambda p: p.startswith(
            ("desktop/core/", "desktop/store/", "desktop/hub/", "desktop/scheduler/")
        ),
        lambda m: under(m, UPPER),
    ),
)

# Known breaks, each with its reason; test_known_exceptions_are_still_needed fails once one is
# fixed, so the list only shrinks.
KNOWN = {
    # catches peewee's DataError/IntegrityError around a commit; the store split (issue 15,
    # other half) is to hand these out as store errors
    ("desktop/hub/commit.py", "peewee"),
}


def imports(path: Path, rel: str) -> list[str]:
    """Every module `path` imports, as dotted names (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = rel[:-3].replace("/", ".").rsplit(".", 1)[0]
    if rel.endswith("/__init__.py"):
        package = rel[: -len("/__init__.py")].replace("/", ".")
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append(module)
            # `from desktop import store` imports desktop.store
            out += [f"{module}.{a.name}" for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.append(arg.value)
    return out


def violations(root: Path) -> set[tuple[str, str, str]]:
    """(rule, file, imported module) for every import that breaks a rule."""
    found = set()
    for top in ("desktop", "worker"):
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            names = imports(path, rel)
            for rule in RULES:
                if not rule.covers(rel):
                    continue
                for name in names:
                    if rule.forbidden(name):
                        found.add((rule.text, rel, name.split(".")[0] if name in QT else name))
    return found


def real(found: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    return {v for v in found if (v[1], v[2]) not in KNOWN}


def test_the_tree_keeps_its_layers() -> None:
    found = real(violations(ROOT))
    assert not found, "\n".join(f"{f}: imports {m} ({r})" for r, f, m in sorted(found))


def test_known_exceptions_are_still_needed() -> None:
    found = {(f, m) for _r, f, m in violations(ROOT)}
    assert found >= KNOWN, f"fixed, remove from KNOWN: {sorted(KNOWN - found)}"


BREAKS = {
    # file in a scratch tree -> its source; each breaks exactly the rule named in the comment
    "desktop/core/bad_up.py": "from desktop.store import queries\n",  # core
    "desktop/core/bad_ws.py": "import websockets\n",  # core (and: nothing else matches)
    "worker/bad.py": "def f():\n    from desktop.core import runs\n",  # worker, inside a function
    "desktop/service/bad_qt.py": "from PySide6.QtCore import QObject\n",  # only ui imports Qt
    "desktop/cli/bad_db.py": "import peewee\n",  # only store imports peewee
    "desktop/ui/bad_store.py": "from desktop import store\n",  # ui: no store
    "desktop/ui/bad_hub.py": "from ..hub import cleartext\n",  # ui: no hub (relative import)
    "desktop/hub/session.py": "import asyncio\n",  # session is I/O-free
    "desktop/scheduler/bad_up.py": "from desktop.service import Core\n",  # nothing runs back up
}


@pytest.mark.parametrize("rel", sorted(BREAKS))
def test_each_rule_catches_a_break(tmp_path: Path, rel: str) -> None:
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BREAKS[rel], encoding="utf-8")
    found = violations(tmp_path)
    assert [f for _r, f, _m in found] == [rel] * len(found) and found, found


def test_every_rule_is_exercised(tmp_path: Path) -> None:
    for rel, source in BREAKS.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    broken = {r for r, _f, _m in violations(tmp_path)}
    assert broken == {rule.text for rule in RULES}
