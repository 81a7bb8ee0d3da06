"""worker.ini: where it is, what it holds, and the environment overrides.

The file sits next to the executable when frozen (admins double-click ``worker.exe`` in its
folder) and in the current folder otherwise, unless ``--config PATH`` names one.  Relative paths
inside it are relative to the ini's folder, so the folder can be moved as a whole.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import shlex
import socket
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from worker import envpolicy, private, tls
from worker.envpolicy import EnvPolicy
from worker.failover import split_urls
from worker.protocol import DEFAULT_PATH

CONFIG_NAME = "worker.ini"
DEFAULT_SERVER_URL = f"ws://localhost:8000{DEFAULT_PATH}"
ENV_SERVER_URL = ("JOBTRIGGER_SERVER_URL", "REFLEX_SERVER_URL")  # first one set wins
ENV_TOKEN = "JOBTRIGGER_TOKEN"
ENV_CA_FILE = "JOBTRIGGER_CA_FILE"
ENV_CERT_SHA256 = "JOBTRIGGER_CERT_SHA256"
ENV_REQUIRE_TLS = "JOBTRIGGER_REQUIRE_TLS"
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}  # fmt: skip

# Argument lists, not command lines: the script path and its arguments are appended.
DEFAULT_INTERPRETERS: dict[str, list[str]] = {
    ".ps1": ["powershell", "-NoProfile", "-ExecutionPolicy", "Bypass", "-File"],
    ".bat": ["cmd", "/c"],
    ".cmd": ["cmd", "/c"],
    ".sh": ["bash"],
}

TEMPLATE = """\
; Job Trigger worker configuration.
; Fill in at least `token` (shown in the console under Workers > Add worker), check
; `server_url`, then start the worker again.
; Environment variables JOBTRIGGER_SERVER_URL, JOBTRIGGER_TOKEN, JOBTRIGGER_CA_FILE,
; JOBTRIGGER_CERT_SHA256 and JOBTRIGGER_REQUIRE_TLS override these values.
; This file holds the token: the worker creates it readable by its own account only.

[worker]
; WebSocket address of the console's hub (wss:// when the console uses TLS). Two consoles
; on one database (docs/HA.md): list both, separated by a comma; the worker finds the leader.
server_url = {url}
; With wss:// the console's certificate is checked against this computer's trusted
; authorities, unless one of these is set:
; a PEM file of the authority that signed it, or the console's own self-signed certificate
; (relative to this file); the host name in server_url must match the certificate.
; ca_file = hub.crt
; or the certificate's SHA-256 fingerprint (`python -m desktop workers fingerprint` on the
; console prints it); update it when the console's certificate is renewed.
; cert_sha256 =
; With a plain ws:// address the token and all job data travel unencrypted; the worker warns
; at start unless the console is on this computer. true: refuse to start without wss://.
require_tls = false
; Name shown in the console; defaults to this computer's host name.
; name =
; Secret that the console issued for this worker.
token =
; Folder holding the scripts this worker may run (relative to this file).
scripts_dir = scripts
; At most this many runs at the same time on this computer: a dispatch beyond it is declined.
; How many the console sends is set in the console (`python -m desktop workers set NAME
; --slots N`, or Workers > Edit worker); keep this at least as high.
slots = 1
; Not used by the console: a worker's tags (which jobs it receives) are set in the console
; (`python -m desktop workers set NAME --tags windows,sql`, or Workers > Edit worker).
tags =
; Seconds between heartbeats until the console says otherwise.
heartbeat_interval = 10
; Folder keeping output until the console confirms it (relative to this file).
spool_dir = spool
; Biggest spool per run in MB; past it, output is dropped with a notice, the result never is.
spool_max_mb = 256
; On shutdown, seconds that running jobs get to finish before they are killed.
shutdown_grace_seconds = 30
; Also write the log to this file (relative to this file; rotated at 10 MB, 5 kept).
; log_file = worker.log

[interpreters]
; Program (and its arguments) that runs each file extension; .py always runs with the
; worker's own Python. Files with other extensions are executed directly.
.ps1 = powershell -NoProfile -ExecutionPolicy Bypass -File
.bat = cmd /c
.cmd = cmd /c
.sh = bash

[env]
; Variables a job's environment may not set: by default every variable that changes which
; program runs or what it loads (PATH, LD_*, DYLD_*, PYTHON*, PERL5LIB, NODE_OPTIONS, BASH_ENV,
; BASH_FUNC_*, COMSPEC, PSModulePath, ... see the README). A dispatch that sets one is declined.
; Comma separated names, or prefixes ending in *, compared without regard to case.
; allow: permit names the default refuses, e.g. allow = PYTHONPATH, PERL5LIB
allow =
; deny: refuse more names, e.g. deny = AWS_*, http_proxy
deny =
"""


class ConfigError(Exception):
    """The config file is missing something or holds a value that cannot be used."""


class ConfigMissing(ConfigError):
    """No config file: a template was written at ``path``."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"No configuration found. A template was written to {path}.\n"
            "Open it, fill in `token` (and check `server_url`), then start the worker again."
        )
        self.path = path


@dataclass
class WorkerConfig:
    path: Path
    server_url: str = DEFAULT_SERVER_URL
    # every console of a cluster, in order (worker/failover.py); server_url is the first
    server_urls: list[str] = field(default_factory=list)
    name: str = field(default_factory=socket.gethostname)
    token: str = ""
    scripts_dir: Path = Path("scripts")
    slots: int = 1
    tags: list[str] = field(default_factory=list)
    heartbeat_interval: float = 10.0
    spool_dir: Path = Path("spool")
    spool_max_bytes: int = 256 * 1024 * 1024
    shutdown_grace_seconds: float = 30.0
    log_file: Path | None = None
    ca_file: Path | None = None
    cert_sha256: str | None = None  # lower-case hex, see worker.tls
    interpreters: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_INTERPRETERS.items()}
    )
    env_policy: EnvPolicy = field(default_factory=EnvPolicy)
    require_tls: bool = False


def split_command(command: str) -> list[str]:
    """Split an interpreter line; quotes group a path with spaces, backslashes stay literal."""
    # posix=False keeps Windows paths like C:\Tools\pwsh.exe intact but leaves the quotes on.
    return [part.strip('"') for part in shlex.split(command, posix=False)]


def _tls_options(
    cfg: WorkerConfig, sec: configparser.SectionProxy, environ: Mapping[str, str]
) -> None:
    """ca_file / cert_sha256: checked here so a typo stops the worker at start, not at 3 a.m."""
    path = cfg.path
    ca_text = environ.get(ENV_CA_FILE, "").strip() or sec.get("ca_file", "").strip()
    pin_env = environ.get(ENV_CERT_SHA256, "").strip()
    pin_text = pin_env or sec.get("cert_sha256", "").strip()
    where = {
        "ca_file": ENV_CA_FILE if environ.get(ENV_CA_FILE, "").strip() else "[worker] ca_file",
        "cert_sha256": ENV_CERT_SHA256 if pin_env else "[worker] cert_sha256",
    }
    if not ca_text and not pin_text:
        return
    if not cfg.server_url.startswith("wss://"):
        keys = " and ".join(k for k, v in (("ca_file", ca_text), ("cert_sha256", pin_text)) if v)
        raise ConfigError(
            f"{path}: {keys} only apply to TLS, but server_url is {cfg.server_url!r}: use "
            "wss:// if the console has a certificate, or remove them"
        )
    if pin_text:
        try:
            cfg.cert_sha256 = tls.normalize_fingerprint(pin_text)
        except ValueError as exc:
            raise ConfigError(
                f"{path}: {where['cert_sha256']}: {exc}; copy it from "
                "`python -m desktop workers fingerprint` on the console"
            ) from None
    if ca_text:
        # The ini's own paths are relative to its folder; an environment value to the cwd.
        ca = Path(ca_text).absolute() if where["ca_file"] == ENV_CA_FILE else path.parent / ca_text
        if not ca.is_file():
            raise ConfigError(
                f"{path}: {where['ca_file']}: {ca} is not a file; give the PEM certificate of "
                "the console (or of the authority that signed it), relative to this file"
            )
        cfg.ca_file = ca
    try:
        tls.client_context(cfg.ca_file, cfg.cert_sha256)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{path}: {where['ca_file']}: {cfg.ca_file} holds no usable PEM certificate ({exc})"
        ) from None


def plain_ws_off_host(url: str) -> bool:
    """Whether URL is plain ws:// to another computer (the token would cross a network in
    clear).  No name lookup: only 'localhost' and loopback addresses count as this computer."""
    if not url.startswith("ws://"):
        return False
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def default_config_path() -> Path:
    base = Path(sys.executable).resolve().parent if getattr(sys, "frozen", False) else Path.cwd()
    return base / CONFIG_NAME


def write_template(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # "x": never overwrite a file an admin may have created in the meantime.  Private: the
    # admin pastes the token into it.
    with open(path, "x", encoding="utf-8", opener=private.opener) as f:
        f.write(TEMPLATE.format(url=DEFAULT_SERVER_URL))


def _env_policy(path: Path, parser: configparser.ConfigParser) -> EnvPolicy:
    if not parser.has_section("env"):
        return EnvPolicy()
    sec = parser["env"]
    unknown = sorted(set(sec) - {"allow", "deny"})
    if unknown:
        raise ConfigError(
            f"{path}: [env] has unknown {'key' if len(unknown) == 1 else 'keys'} "
            f"{', '.join(unknown)}; use allow, deny"
        )
    lists = {}
    for key in ("allow", "deny"):
        try:
            lists[key] = envpolicy.parse_patterns(sec.get(key, ""))
        except envpolicy.PatternError as exc:
            raise ConfigError(
                f"{path}: [env] {key}: {exc}; write e.g. {key} = NAME, PREFIX_*"
            ) from None
    return EnvPolicy(allow=lists["allow"], deny=lists["deny"])


def _require_tls(path: Path, sec: configparser.SectionProxy, environ: Mapping[str, str]) -> bool:
    raw_env = environ.get(ENV_REQUIRE_TLS, "").strip()
    where, raw = (ENV_REQUIRE_TLS, raw_env)
    if not raw_env:
        where, raw = "[worker] require_tls", sec.get("require_tls", "").strip()
    if not raw:
        return False
    value = _BOOLEANS.get(raw.lower())
    if value is None:
        raise ConfigError(f"{path}: {where} = {raw!r} must be true or false")
    return value


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> WorkerConfig:
    """Read the config, applying environment overrides.

    Raises :class:`ConfigMissing` after writing a template when the file does not exist, and
    :class:`ConfigError` naming the file and key for anything unusable.
    """
    environ = os.environ if environ is None else environ
    path = (path or default_config_path()).absolute()
    if not path.exists():
        write_template(path)
        raise ConfigMissing(path)
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep ".PS1" vs ".ps1" as written; we lower-case ourselves
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(
            f"{path}: line {exc.lineno} comes before any section; the file must start with "
            "[worker] (compare it with the template)"
        ) from None
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    if not parser.has_section("worker"):
        raise ConfigError(f"{path}: has no [worker] section; compare it with the template")
    sec = parser["worker"]
    base = path.parent
    cfg = WorkerConfig(path=path)

    def number(key: str, kind: Callable[[str], float], default: float, minimum: float) -> float:
        raw = sec.get(key, "").strip()
        if not raw:
            return default
        try:
            value = kind(raw)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ConfigError(f"{path}: [worker] {key} = {raw!r} is not {what}") from None
        if value < minimum:
            raise ConfigError(f"{path}: [worker] {key} must be at least {minimum}, not {raw}")
        return value

    cfg.server_url = sec.get("server_url", "").strip() or DEFAULT_SERVER_URL
    cfg.name = sec.get("name", "").strip() or cfg.name
    cfg.token = sec.get("token", "").strip()
    cfg.scripts_dir = base / (sec.get("scripts_dir", "").strip() or "scripts")
    cfg.spool_dir = base / (sec.get("spool_dir", "").strip() or "spool")
    log_file = sec.get("log_file", "").strip()
    cfg.log_file = base / log_file if log_file else None
    cfg.slots = int(number("slots", int, 1, 1))
    cfg.tags = [t.strip() for t in sec.get("tags", "").split(",") if t.strip()]
    cfg.heartbeat_interval = number("heartbeat_interval", float, 10.0, 0.1)
    cfg.shutdown_grace_seconds = number("shutdown_grace_seconds", float, 30.0, 0)
    cfg.spool_max_bytes = int(number("spool_max_mb", float, 256, 1) * 1024 * 1024)
    if parser.has_section("interpreters"):
        for ext, command in parser["interpreters"].items():
            ext = ext.strip().lower()
            if not ext.startswith(".") or len(ext) < 2:
                raise ConfigError(
                    f"{path}: [interpreters] key {ext!r} must be a file extension like .ps1"
                )
            parts = split_command(command)
            if not parts:
                raise ConfigError(f"{path}: [interpreters] {ext} is empty; name a program")
            cfg.interpreters[ext] = parts

    for var in ENV_SERVER_URL:
        if environ.get(var, "").strip():
            cfg.server_url = environ[var].strip()
            break
    if environ.get(ENV_TOKEN, "").strip():
        cfg.token = environ[ENV_TOKEN].strip()

    cfg.server_urls = split_urls(cfg.server_url) or [DEFAULT_SERVER_URL]
    cfg.server_url = cfg.server_urls[0]
    cfg.require_tls = _require_tls(path, sec, environ)
    for url in cfg.server_urls:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(
                f"{path}: server_url {url!r} must start with ws:// or wss:// "
                "(or fix JOBTRIGGER_SERVER_URL)"
            )
        if cfg.require_tls and not url.startswith("wss://"):
            raise ConfigError(
                f"{path}: require_tls is on but server_url {url!r} is plain ws://, "
                "which would send the token unencrypted: use the console's wss:// address "
                f"(or turn require_tls off in [worker] / {ENV_REQUIRE_TLS})"
            )
    cfg.env_policy = _env_policy(path, parser)
    _tls_options(cfg, sec, environ)
    if not cfg.token:
        raise ConfigError(
            f"{path}: [worker] token is empty; paste the token the console issued for this worker "
            f"(or set {ENV_TOKEN})"
        )
    return cfg
