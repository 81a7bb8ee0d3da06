"""The files a newcomer installs from: entry points and optional groups in pyproject.toml, the
worker's own requirements file, and a .gitignore that keeps tokens and databases out of git."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_names_both_commands_and_the_optional_groups():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"] == {
        "jobtrigger": "desktop.cli:main",
        "jobtrigger-worker": "worker.__main__:main",
    }
    assert {"postgres", "dev"} <= set(project["optional-dependencies"])
    # every runtime requirement of the checkout is a dependency (PostgreSQL's driver: optional)
    wanted = [
        line.split(";")[0].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    have = set(project["dependencies"]) | set(project["optional-dependencies"]["postgres"])
    assert sorted(set(wanted) - have) == []


def _imported_top_names(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_requirements_worker_covers_what_the_worker_imports_and_nothing_of_the_console():
    lines = [
        line.split(">=")[0].strip().lower()
        for line in (ROOT / "requirements-worker.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "pyside6-essentials" not in lines and "peewee" not in lines
    third_party = {
        name
        for name in _imported_top_names(ROOT / "worker")
        if name not in sys.stdlib_module_names and name not in ("worker", "_winapi", "msvcrt")
    }
    assert third_party <= set(lines), third_party - set(lines)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize(
    "path",
    [
        "worker.ini",
        "dist/worker/worker.ini",
        "spool/0001.jsonl",
        "jobtrigger.db",
        "local.sqlite3",
        "x.db-wal",
    ],
)
def test_gitignore_keeps_tokens_spools_and_databases_out(path):
    done = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, capture_output=True
    )
    if done.returncode == 128:
        pytest.skip("not a git checkout")
    assert done.returncode == 0, f"{path} is not ignored"
