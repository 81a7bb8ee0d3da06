"""The allow-list rules and interpreter choice, on real paths in tmp, no processes."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from worker import scripts
from worker.config import DEFAULT_INTERPRETERS


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "scripts"
    d.mkdir()
    (d / "job.py").write_text("print('hi')\n")
    (d / "deploy.ps1").write_text("Write-Output hi\n")
    (d / "sub").mkdir()
    (d / "sub" / "inner.py").write_text("")
    outside = tmp_path / "outside.py"
    outside.write_text("")
    os.symlink(outside, d / "link_out.py")
    os.symlink(d / "job.py", d / "link_in.py")
    os.symlink(tmp_path, d / "dirlink")
    return d


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        (".", "folder reference"),
        ("..", "folder reference"),
        ("../outside.py", "'..'"),
        ("..\\outside.py", "'..'"),
        ("sub/inner.py", "path separator"),
        ("sub\\inner.py", "path separator"),
        ("/etc/passwd", "path separator"),
        ("C:\\Windows\\notepad.exe", "drive letter"),
        ("C:job.py", "drive letter"),
        ("job.py:stream", "reserved character"),
        ("job.py.", "trailing dot"),
        (" job.py", "spaces"),
        ("job\x00.py", "reserved character"),
        ("link_out.py", "outside the scripts folder"),
        ("dirlink", "outside the scripts folder"),
        ("sub", "not a regular file"),
        ("nope.py", "unknown script"),
    ],
)
def test_unsafe_names_are_refused_with_a_reason(folder, name, reason):
    with pytest.raises(scripts.UnsafeScript, match=reason.replace(".", r"\.")):
        scripts.resolve(folder, name)


def test_plain_names_and_links_inside_resolve(folder):
    assert scripts.resolve(folder, "job.py") == (folder / "job.py").resolve()
    assert scripts.resolve(folder, "link_in.py") == (folder / "job.py").resolve()


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(scripts.UnsafeScript, match=r"scripts folder .* does not exist"):
        scripts.resolve(tmp_path / "absent", "job.py")


def test_catalogue_lists_only_runnable_files_with_sha256(folder):
    entries = {e["name"]: e["sha256"] for e in scripts.catalogue(folder)}
    assert set(entries) == {"job.py", "deploy.ps1", "link_in.py"}
    assert entries["job.py"] == hashlib.sha256(b"print('hi')\n").hexdigest()
    assert scripts.catalogue(folder / "absent") == []


def test_python_runs_with_own_interpreter_unbuffered(folder):
    argv = scripts.command(folder / "job.py", ["a b", "--c"], DEFAULT_INTERPRETERS, frozen=False)
    assert argv == [sys.executable, "-u", str(folder / "job.py"), "a b", "--c"]


def test_frozen_python_reinvokes_the_worker_in_script_mode(folder):
    argv = scripts.command(
        folder / "job.py", ["x"], DEFAULT_INTERPRETERS, frozen=True, executable="C:/w/worker.exe"
    )
    assert argv == ["C:/w/worker.exe", "--run-script", str(folder / "job.py"), "x"]


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("deploy.ps1", ["powershell", "-NoProfile", "-ExecutionPolicy", "Bypass", "-File"]),
        ("x.BAT", ["cmd", "/c"]),
        ("x.cmd", ["cmd", "/c"]),
        ("x.sh", ["bash"]),
        ("tool.exe", []),
    ],
)
def test_interpreter_by_extension_never_a_shell_string(tmp_path, name, prefix):
    path = tmp_path / name
    assert scripts.command(path, ["1"], DEFAULT_INTERPRETERS) == [*prefix, str(path), "1"]


def test_the_catalogue_rescans_cheaply_and_sees_new_changed_and_removed_scripts(
    tmp_path, monkeypatch
):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "a.py").write_text("print(1)\n")
    hashed = []
    real_sha = scripts.sha256_of
    monkeypatch.setattr(scripts, "sha256_of", lambda p: hashed.append(p.name) or real_sha(p))
    cat = scripts.Catalogue(folder)
    first = cat.scan()
    assert [e["name"] for e in first] == ["a.py"] and hashed == ["a.py"]
    assert cat.scan() == first and hashed == ["a.py"]  # unchanged: not hashed again
    (folder / "b.sh").write_text("echo b\n")
    (folder / "a.py").write_text("print(22)\n")  # another size: hashed again
    second = cat.scan()
    assert [e["name"] for e in second] == ["a.py", "b.sh"]
    assert second[0]["sha256"] != first[0]["sha256"]
    assert sorted(hashed) == ["a.py", "a.py", "b.sh"]
    (folder / "b.sh").unlink()
    assert [e["name"] for e in cat.scan()] == ["a.py"]


def test_stale_says_whether_a_scan_would_differ_without_hashing(tmp_path, monkeypatch):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "a.py").write_text("print(1)\n")
    cat = scripts.Catalogue(folder)
    assert cat.stale()  # never scanned
    cat.scan()
    monkeypatch.setattr(scripts, "sha256_of", lambda p: pytest.fail("stale() must not hash"))
    assert not cat.stale()
    (folder / "b.py").write_text("print(2)\n")
    assert cat.stale()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NUL.py", "device name"),
        ("con", "device name"),
        ("com1.bat", "device name"),
        ("LPT\u00b9.ps1", "device name"),
        ("conin$.py", "device name"),
        ("job\u202e.py", "invisible or control"),  # right-to-left override
        ("j\u200bob.py", "invisible or control"),  # zero-width space
        ("job.py\ud800", "invisible or control"),  # unpaired surrogate (valid JSON)
        ("JOB.PY", "unknown script"),  # another case: not as listed
        ("jo\u0301b.py", "unknown script"),
    ],
)
def test_device_names_invisible_characters_and_other_spellings_are_refused(folder, name, expected):
    with pytest.raises(scripts.UnsafeScript, match=expected):
        scripts.resolve(folder, name)


def test_a_name_must_be_listed_exactly_even_where_the_file_system_would_map_it(folder):
    # On a case-insensitive (Windows, macOS) or normalising file system 'JOB.PY' or an 8.3 short
    # name would open job.py; requiring the listed spelling makes every OS behave alike.
    (folder / "caf\u00e9.py").write_text("")
    assert scripts.resolve(folder, "caf\u00e9.py").name == "caf\u00e9.py"
    with pytest.raises(scripts.UnsafeScript, match="unknown script"):
        scripts.resolve(folder, "cafe\u0301.py")  # the NFD spelling of the same name


CMD = {".bat": ["cmd", "/c"], ".cmd": ["cmd", "/c"], ".x": ["C:\\Windows\\System32\\CMD.EXE", "/c"]}


@pytest.mark.parametrize(
    "arg", ['x" & calc & "', "%PATH%", "!X!", "a|b", "a>b", "a^b", "(a)", "a\nb"]
)
@pytest.mark.parametrize("script", ["C:\\s\\run.bat", "C:\\s\\run.CMD", "C:\\s\\run.x"])
def test_cmd_metacharacters_in_batch_arguments_are_refused(arg, script):
    # The "BatBadBut" class: cmd.exe parses the command line again, so quoting cannot help.
    problem = scripts.argument_problem(Path(script), ["fine", arg], CMD)
    assert problem is not None and "argument 2" in problem and "cmd.exe" in problem


def test_batch_arguments_without_metacharacters_and_other_scripts_pass():
    ok = ["plain", "with space", "C:\\path\\file.txt", "a=b", "-flag", "", "k,v;w"]
    assert scripts.argument_problem(Path("C:\\s\\run.bat"), ok, CMD) is None
    risky = ['x" & calc & "', "%PATH%"]
    for script in ("C:\\s\\a.ps1", "/s/a.py", "/s/a.sh", "/s/a"):
        assert scripts.argument_problem(Path(script), risky, DEFAULT_INTERPRETERS) is None
    problem = scripts.argument_problem(Path("C:\\a&b\\run.bat"), [], CMD)
    assert problem is not None and "script's path" in problem


@pytest.mark.parametrize("arg", ["a\x00b", "\udc80"])
def test_arguments_no_program_can_receive_are_refused_for_every_script(arg):
    problem = scripts.argument_problem(Path("/s/a.py"), ["ok", arg], DEFAULT_INTERPRETERS)
    assert problem is not None and "argument 2" in problem
