"""Which environment variables a dispatch may set for a job: the worker decides, not the hub.

A hub that may set PATH, LD_PRELOAD, PYTHONSTARTUP or BASH_ENV chooses the program that runs,
whatever the allow-list says.  So a dispatch's ``env`` is checked here before anything starts,
and one refused name declines the whole dispatch (a job run without a variable it expected is
worse than a job not run).  The default refuses every variable that changes which program runs
or what it loads, on every OS (a Windows worker gets the POSIX names refused too: cheap, and one
rule is easier to reason about than two).  Names compare case-insensitively everywhere because
Windows treats 'Path' as PATH.

Three kinds of refusal:

- *unsafe*: on the default list (or an admin's ``deny``); ``[env] allow`` in worker.ini can
  permit it;
- *reserved*: set by the worker itself for the child (an override would break how the worker
  reads the output); nothing permits it;
- *invalid*: not a portable variable name, or a value no OS can pass (NUL, unpaired surrogate);
  nothing permits it.

Pure: no I/O, unit-tested in tests/worker/test_envpolicy.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Exact names (upper case).  Sources: sudo's env_delete list and glibc's unsecvars, plus what
# each interpreter and Windows read at start-up.
DEFAULT_DENY_NAMES = frozenset(
    {
        # which program a name means: search paths, the shell, Windows' own folders
        "PATH", "PATHEXT", "CDPATH", "FPATH", "COMSPEC", "SYSTEMROOT", "WINDIR",
        "SYSTEMDRIVE", "PSMODULEPATH", "PSEXECUTIONPOLICYPREFERENCE", "__PSLOCKDOWNPOLICY",
        "__COMPAT_LAYER",
        # what the loader and the C library load
        "LIBPATH", "SHLIB_PATH", "GLIBC_TUNABLES", "GCONV_PATH", "LOCPATH", "NLSPATH",
        "PATH_LOCALE", "MALLOC_TRACE", "GETCONF_DIR", "HOSTALIASES", "RES_OPTIONS",
        "LOCALDOMAIN",
        # shell start-up and parsing
        "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "GLOBIGNORE", "ZDOTDIR",
        "PROMPT_COMMAND",
        # interpreters' start-up hooks and module paths
        "PERLLIB", "PERL5LIB", "PERL5OPT", "PERL5DB", "PERLIO_DEBUG", "PERL5SHELL",
        "RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "NODE_PATH", "TCLLIBPATH", "PHPRC",
        "PHP_INI_SCAN_DIR", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
        "CLASSPATH", "DOTNET_STARTUP_HOOKS", "COR_ENABLE_PROFILING",
        "CORECLR_ENABLE_PROFILING",
        # libraries that load modules or write secrets where they are told
        "OPENSSL_CONF", "OPENSSL_ENGINES", "OPENSSL_MODULES", "SSLKEYLOGFILE",
        # tools that scripts call and that run a command named in a variable
        "GIT_SSH", "GIT_SSH_COMMAND", "GIT_EXEC_PATH", "GIT_ASKPASS", "SSH_ASKPASS",
        "GIT_PROXY_COMMAND", "GIT_EXTERNAL_DIFF",
        # terminal descriptions (sudo's list: parsed by curses with few checks)
        "TERMINFO", "TERMINFO_DIRS", "TERMPATH", "TERMCAP",
    }
)  # fmt: skip
# Prefixes (upper case) of whole families.
DEFAULT_DENY_PREFIXES = (
    "LD_",  # glibc / Solaris loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT...
    "DYLD_",  # macOS loader
    "_RLD",  # IRIX / Tru64 loader
    "PYTHON",  # PYTHONPATH, PYTHONSTARTUP, PYTHONHOME, PYTHONINSPECT, PYTHONUSERBASE...
    "_MEIPASS",  # PyInstaller: where a frozen worker (it runs .py jobs) unpacks itself
    "_PYI_",  # PyInstaller's bootloader state
    "BASH_FUNC_",  # exported bash functions (Shellshock's carrier)
    "COR_PROFILER",  # .NET Framework profiler DLL (PowerShell 5 is .NET)
    "CORECLR_PROFILER",  # .NET Core profiler DLL (pwsh)
    "COMPLUS_",  # .NET runtime knobs
    "DOTNET_",  # .NET host and runtime knobs, incl. startup hooks
    "GIT_CONFIG",  # GIT_CONFIG_COUNT/KEY_n/VALUE_n set any git config, e.g. core.sshCommand
    "LUA_INIT",
    "LUA_PATH",
    "LUA_CPATH",
    "R_PROFILE",
)
# Set by the worker itself for every child (child_environment): never overridable.
WORKER_SETS = {"PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"}
# The guardian finds a run's processes by this tag (worker/leftovers.py TAG_VAR): a job that could
# set it could point the guardian at another run, or hide from it.
RUN_TAG = "JOBTRIGGER_RUN_TAG"
RESERVED = frozenset({*WORKER_SETS, RUN_TAG})

# Portable variable names (POSIX shells): anything else is either ignored, mangled or, on
# Windows, something like 'ProgramFiles(x86)' or '=C:' that steers the system.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\*?")

ALLOW_KEY = "[env] allow"


class PatternError(ValueError):
    """A worker.ini pattern that is not NAME or PREFIX*."""


def parse_patterns(text: str) -> tuple[str, ...]:
    """'NAME, PREFIX_*' -> ('NAME', 'PREFIX_*') upper-cased; PatternError names the bad item."""
    out = []
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        if not _PATTERN.fullmatch(item):
            raise PatternError(
                f"{item!r} is not a variable name or a prefix ending in '*' (letters, digits, _)"
            )
        out.append(item.upper())
    return tuple(out)


def valid_name(name: str) -> bool:
    """A portable variable name (the console checks secrets' names with this)."""
    return bool(_NAME.fullmatch(name))


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


def default_refuses(name: str) -> bool:
    upper = name.upper()
    return upper in DEFAULT_DENY_NAMES or upper.startswith(DEFAULT_DENY_PREFIXES)


@dataclass(frozen=True)
class EnvPolicy:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def refused(self, name: str) -> bool:
        """Whether NAME (a valid, unreserved name) is refused: deny wins over allow."""
        upper = name.upper()
        if _matches(upper, self.deny):
            return True
        return default_refuses(upper) and not _matches(upper, self.allow)

    def check(self, env: Mapping[str, str]) -> str | None:
        """Why ENV cannot be given to a job (a reason for the hub), or None when it can."""
        invalid = [n for n in env if not _NAME.fullmatch(n)]
        bad_values = [n for n, v in env.items() if n not in invalid and not _passable(v)]
        reserved = [n for n in env if n.upper() in RESERVED]
        unsafe = [
            n
            for n in env
            if n not in invalid and n not in reserved and n not in bad_values and self.refused(n)
        ]
        problems = []
        if invalid:
            problems.append(
                f"{_names(invalid)}: not valid variable names (letters, digits and _, not "
                "starting with a digit); no setting permits them"
            )
        if bad_values:
            problems.append(
                f"{_names(bad_values)}: values hold a NUL or an unpaired surrogate, which no "
                "program can receive"
            )
        if reserved:
            problems.append(f"{_names(reserved)}: set by the worker itself; nothing permits them")
        if unsafe:
            problems.append(
                f"{_names(unsafe)}: could change which program runs or what it loads; this "
                f"worker refuses them (its admin can permit names with {ALLOW_KEY} in worker.ini)"
            )
        if not problems:
            return None
        return "environment refused: " + "; ".join(problems)


def child_environment(
    base: Mapping[str, str], job_env: Mapping[str, str], *, ignore_case: bool
) -> dict[str, str]:
    """BASE (the worker's own environment), then the job's checked variables, then the worker's
    own settings.  With IGNORE_CASE (Windows) a name replaces every spelling of it, so the child
    never gets both 'Temp' and 'TEMP' and which one wins is not left to the C runtime."""
    env = dict(base)
    for layer in (job_env, WORKER_SETS):
        if ignore_case:
            upper = {n.upper() for n in layer}
            env = {n: v for n, v in env.items() if n.upper() not in upper}
        env.update(layer)
    return env


def _passable(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _names(names: list[str]) -> str:
    # Names come from the hub: invalid ones are shown quoted and cut short.
    shown = ", ".join(n if _NAME.fullmatch(n) else repr(n[:40]) for n in sorted(names)[:20])
    return shown + (f" and {len(names) - 20} more" if len(names) > 20 else "")
