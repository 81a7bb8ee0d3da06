"""The worker's environment policy, as a pure function: what a dispatch's env may set."""

from __future__ import annotations

import pytest

from worker.envpolicy import (
    EnvPolicy,
    PatternError,
    child_environment,
    default_refuses,
    parse_patterns,
)

REFUSED_BY_DEFAULT = [
    # search paths and Windows' own program locations
    "PATH", "Path", "path", "PATHEXT", "COMSPEC", "ComSpec", "SystemRoot", "windir",
    "PSModulePath", "PSExecutionPolicyPreference", "__COMPAT_LAYER", "CDPATH",
    # dynamic loaders
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "ld_preload", "DYLD_INSERT_LIBRARIES",
    "GLIBC_TUNABLES", "GCONV_PATH", "LIBPATH",
    # interpreter start-up hooks
    "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONINSPECT", "PYTHONUSERBASE",
    "PYTHONWARNINGS", "_MEIPASS2", "_PYI_APPLICATION_HOME_DIR", "PERL5LIB", "PERL5OPT",
    "RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
    "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "BASH_FUNC_ls%%",
    "COR_PROFILER_PATH", "CORECLR_PROFILER", "DOTNET_STARTUP_HOOKS", "COMPlus_EnableDiagnostics",
    "OPENSSL_CONF", "GIT_SSH_COMMAND", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0",
]  # fmt: skip
HARMLESS = ["EXIT_CODE", "DB_PASSWORD", "HOME", "LANG", "TZ", "MY_PATH", "PATHFINDER_URL"]


@pytest.mark.parametrize("name", REFUSED_BY_DEFAULT)
def test_the_default_refuses_what_changes_the_program_or_its_loader(name):
    if "%" in name:  # bash exports functions as BASH_FUNC_name%%: not even a valid name
        assert "not valid variable names" in EnvPolicy().check({name: "() { evil; }"})
        return
    assert default_refuses(name)
    reason = EnvPolicy().check({name: "x", "EXIT_CODE": "0"})
    assert reason is not None and name in reason and "EXIT_CODE" not in reason
    assert "[env] allow" in reason  # the key that would permit it


@pytest.mark.parametrize("name", HARMLESS)
def test_ordinary_variables_pass(name):
    assert EnvPolicy().check({name: "value with spaces; and $(signs)"}) is None


def test_allow_permits_names_and_prefixes_case_insensitively_and_deny_wins():
    policy = EnvPolicy(allow=parse_patterns("pythonpath, PERL5*"), deny=parse_patterns("AWS_*"))
    assert policy.check({"PYTHONPATH": "/opt/lib", "PERL5LIB": "/x", "PERL5OPT": "-w"}) is None
    assert "PYTHONSTARTUP" in policy.check({"PYTHONSTARTUP": "/tmp/x.py"})
    assert "aws_secret" in policy.check({"aws_secret": "k"})
    both = EnvPolicy(allow=("PATH",), deny=("PATH",))
    assert "PATH" in both.check({"PATH": "/bin"})


def test_reserved_and_invalid_names_and_values_cannot_be_allowed():
    everything = EnvPolicy(allow=("P*",))
    reason = everything.check({"PYTHONIOENCODING": "latin-1"})
    assert "PYTHONIOENCODING" in reason and "set by the worker itself" in reason
    # the guardian's run tag: a job setting it could hide from the guardian or aim it elsewhere
    for spelling in ("JOBTRIGGER_RUN_TAG", "jobtrigger_run_tag"):
        reason = EnvPolicy(allow=("J*", "j*")).check({spelling: "other-life:1"})
        assert reason is not None and "set by the worker itself" in reason, spelling
    for name in ["", "=C:", "A=B", "1ABC", "X Y", "NUL\x00", "ProgramFiles(x86)", "X" * 300]:
        reason = EnvPolicy(allow=("X*", "P*", "N*")).check({name: "v"})
        assert reason is not None and "not valid variable names" in reason, name
        assert len(reason) < 400  # a hostile name is shown cut short
    for value in ["a\x00b", "\ud800"]:
        assert "NUL or an unpaired surrogate" in EnvPolicy().check({"OK_NAME": value})


def test_every_refused_name_is_listed_once_in_one_reason():
    reason = EnvPolicy().check({"LD_PRELOAD": "/x.so", "PATH": "/tmp", "GOOD": "1", "": "v"})
    assert reason.startswith("environment refused: ")
    assert "LD_PRELOAD, PATH:" in reason and "''" in reason and "GOOD" not in reason
    many = {f"LD_X{i}": "v" for i in range(50)}
    assert "and 30 more" in EnvPolicy().check(many)


@pytest.mark.parametrize("text", ["PA TH", "A*B", "*", "1X", "X**", "A-B", "A=1"])
def test_broken_patterns_are_refused(text):
    with pytest.raises(PatternError, match="not a variable name or a prefix"):
        parse_patterns(text)


def test_patterns_split_on_commas_and_lines():
    assert parse_patterns(" a, B_* ,\n c ") == ("A", "B_*", "C")
    assert parse_patterns("") == ()


def test_the_child_environment_is_base_then_job_then_the_workers_own_settings():
    base = {"Temp": "C:\\T", "PATH": "/bin", "PythonUnbuffered": "0", "KEEP": "1"}
    job = {"TEMP": "D:\\T", "EXIT_CODE": "3"}
    windows = child_environment(base, job, ignore_case=True)
    assert windows == {
        "PATH": "/bin", "KEEP": "1", "TEMP": "D:\\T", "EXIT_CODE": "3",
        "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
    posix = child_environment(base, job, ignore_case=False)
    assert posix["Temp"] == "C:\\T" and posix["TEMP"] == "D:\\T"
    assert posix["PythonUnbuffered"] == "0" and posix["PYTHONUNBUFFERED"] == "1"
