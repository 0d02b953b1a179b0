"""Settings: command-line option > ORCHESTRATE_* environment variable > orchestrate.toml > default.

Every value passes through one parser per key, whatever its source, so a bad value is refused
the same way and the message names where it came from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from orchestrator.errors import UsageError
from orchestrator.names import AGENT_KINDS as AGENT_KINDS  # the kinds --agent accepts
from orchestrator.names import PRESET_NAMES as PRESET_NAMES  # agents/presets.py defines each

CONFIG_FILE = "orchestrate.toml"
DEFAULT_MODEL = "claude-sonnet-5-5"


@dataclass(frozen=True)
class ClaudeSettings:
    bash: bool = True
    max_turns: int = 60
    max_tokens: int = 8192
    token_budget: int = 2_000_000
    bash_timeout: float = 120.0
    output_limit: int = 20_000
    max_retries: int = 4  # the Anthropic SDK's retries of one request (429, 5xx, overloaded)


@dataclass(frozen=True)
class Price:
    """USD per million tokens of each kind (SPEC 12)."""

    input: float
    output: float
    cache_read: float
    cache_write: float


@dataclass(frozen=True)
class Settings:
    max_parallel: int = 5
    agent: str | None = None
    agent_command: str | None = None
    model: str = DEFAULT_MODEL
    base: str | None = None
    timeout: float = 1800.0
    retries: int = 1
    overlap: str = "merge"
    no_merge: bool = False
    retry_failed: bool = False
    keep_worktrees: bool = False
    reuse_worktrees: bool = True
    dry_run: bool = False
    json: bool = False
    copy: tuple[str, ...] = (".env", ".env.local")
    setup: tuple[str, ...] = ()
    claude: ClaudeSettings = field(default_factory=ClaudeSettings)
    check: str | None = None
    check_timeout: float | None = None  # None: `timeout`
    check_retries: int = 1
    schedule: str = "spread"  # SPEC 11: waves around declared files, or `together`
    agent_args: tuple[str, ...] = ()
    budget: float | None = None
    prices: dict[str, Price] = field(default_factory=dict)  # [prices.<model>] overrides
    model_given: bool = False  # --model (or its env/config key) was set, not the default
    resolve: str = "agent"  # SPEC 10: conflicts go back to the agent, or to the user (manual)
    resolve_attempts: int = 2
    runner: str = "local"
    ray_address: str = "auto"
    remote: str = "origin"
    # the build in a browser: `build --ui` serves the live page while it runs
    ui: bool = False
    # conflict radar: off, show (events and the plan) or tell (the agents too), every N seconds
    radar: str = "show"
    radar_interval: float = 5.0
    # sandbox: where agents, setup, verification and checks run (bubblewrap or none)
    sandbox: str = "auto"
    sandbox_network: str = "allow"
    sandbox_allow: tuple[str, ...] = ()
    sandbox_paths: tuple[str, ...] = ()
    check_network: str = "none"
    # Watching and steering a build: `build --only`, and `pty` for `orchestrate attach`.
    only: tuple[str, ...] = ()  # run just these subtasks (their dependencies are completed)
    pty: bool = False  # command agents run under a pseudo-terminal one can attach to
    # Copy-on-write workspaces: overlay worktrees where they can be mounted (auto), always
    # (overlay: an error where they cannot), or never (worktree: full checkouts).
    workspace: str = "auto"

    @property
    def check_limit_s(self) -> float:
        return self.check_timeout if self.check_timeout is not None else self.timeout


def _positive_int(value: Any) -> int:
    number = _int(value)
    if number < 1:
        raise ValueError("must be a whole number of at least 1")
    return number


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError(f"must be a whole number, not {value!r}") from None
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a number of seconds, not {value!r}") from None
    if not number > 0:
        raise ValueError("must be more than 0 seconds")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"must be true or false, not {value!r}")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, not {value!r}")
        return str(value)
    return parse


def _usd(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be an amount in USD")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be an amount in USD, not {value!r}") from None
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError("must be an amount of more than 0 USD")
    return number


def _price_rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number of USD per million tokens, not {value!r}")
    if value < 0 or value != value or value == float("inf"):
        raise ValueError("must be a number of USD per million tokens, at least 0")
    return float(value)


def _arg_list(value: Any) -> tuple[str, ...]:
    """Arguments for the agent's program: a list, or one string split like a shell would."""
    if isinstance(value, str):
        import shlex  # here: `status`, `list` and `--help` never split arguments

        try:
            return tuple(shlex.split(value))
        except ValueError as exc:
            raise ValueError(f"cannot be split into arguments: {exc}") from None
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


# sandbox settings: lists given as one string (an environment variable) are separated by `:`;
# a path's `:rw` suffix stays with its path
def _colon_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, str):
        return _str_list(value)
    items: list[str] = []
    for part in value.split(":"):
        if part == "rw" and items:
            items[-1] += ":rw"
        elif part.strip():
            items.append(part.strip())
    return tuple(items)


def _host_list(value: Any) -> tuple[str, ...]:
    """Host names (HTTPS on 443) or host:port entries; in one string a port stays with its
    host (`api.example.com:pypi.org:8443`)."""
    if isinstance(value, str):
        hosts: list[str] = []
        for part in value.split(":"):
            if part.isdigit() and hosts:
                hosts[-1] += f":{part}"
            elif part.strip():
                hosts.append(part.strip())
        value = hosts
    found = _str_list(value)
    for host in found:
        name, _, port = host.partition(":")
        if not name.strip() or any(c in name for c in "/ @") or (port and not port.isdigit()):
            raise ValueError(f"must hold host names or host:port (api.example.com), "
                             f"not {host!r}")
    return tuple(host.strip().lower() for host in found)


def _path_list(value: Any) -> tuple[str, ...]:
    paths = _colon_list(value)
    for entry in paths:
        path = entry.removesuffix(":rw")
        if not (path.startswith("/") or path == "~" or path.startswith("~/")):
            raise ValueError(f"must hold absolute paths or ~/..., not {entry!r}")
    return paths


NETWORK = _choice("none", "allow", "host")
SANDBOX_PARSERS: dict[str, Callable[[Any], Any]] = {
    "sandbox": _choice("auto", "bwrap", "none"), "sandbox_network": NETWORK,
    "sandbox_allow": _host_list, "sandbox_paths": _path_list, "check_network": NETWORK,
}


PARSERS: dict[str, Callable[[Any], Any]] = {
    "max_parallel": _positive_int, "agent": _choice(*AGENT_KINDS),
    "agent_command": _text, "model": _text, "base": _text, "timeout": _seconds,
    "retries": _int, "overlap": _choice("merge", "block"), "no_merge": _bool,
    "retry_failed": _bool, "keep_worktrees": _bool, "reuse_worktrees": _bool, "dry_run": _bool,
    "json": _bool, "copy": _str_list, "setup": _str_list,
    "check": _text, "check_timeout": _seconds, "check_retries": _int,
    "schedule": _choice("spread", "together"),
    "agent_args": _arg_list, "budget": _usd,
    "resolve": _choice("agent", "manual"), "resolve_attempts": _int,
    "runner": _choice("local", "ray"), "ray_address": _text, "remote": _text,
    **SANDBOX_PARSERS,
    # the build in a browser
    "ui": _bool,
}
# conflict radar
PARSERS.update({"radar": _choice("off", "show", "tell"), "radar_interval": _seconds})
# Watching and steering a build: `build --only ID[,ID...]` and `pty = true`.
PARSERS.update({"only": _str_list, "pty": _bool})
# Copy-on-write workspaces
PARSERS.update({"workspace": _choice("auto", "overlay", "worktree")})
PRICE_KEYS = ("input", "output", "cache_read", "cache_write")
CLAUDE_PARSERS: dict[str, Callable[[Any], Any]] = {
    "bash": _bool, "max_turns": _positive_int, "max_tokens": _positive_int,
    "token_budget": _positive_int, "bash_timeout": _seconds, "output_limit": _positive_int,
    "max_retries": _int,
}


def load_settings(repo: Path, options: Mapping[str, Any],
                  environ: Mapping[str, str] | None = None,
                  remembered: Mapping[str, Any] | None = None) -> Settings:
    """Merge the sources for every setting; `options` holds None for options not given.
    `remembered` holds what the spec's last build recorded (e.g. its overlap policy), which
    comes after the command line and the environment and before orchestrate.toml.

    Every value given is checked, also one that a higher source overrides: a typo in
    orchestrate.toml should not wait for the day the option is left out."""
    environ = os.environ if environ is None else environ
    remembered = remembered or {}
    config = read_config(repo)
    values: dict[str, Any] = {}
    for key, parse in PARSERS.items():
        env_name = "ORCHESTRATE_" + key.upper()
        given = [(f"option --{key.replace('_', '-')}", options.get(key)),
                 (f"environment variable {env_name}", environ.get(env_name)),
                 (f"the plan's record of the last build (`orchestrate.{key}`)",
                  remembered.get(key)),
                 (f"{CONFIG_FILE} key `{key}`", config.get(key))]
        parsed = [_parse(parse, raw, source) for source, raw in given if raw is not None]
        if parsed:
            values[key] = parsed[0]
    values["claude"] = _claude_settings(config.get("claude", {}))
    values["prices"] = _prices(config.get("prices", {}))
    values["model_given"] = "model" in values
    _check_unknown_keys(config)
    settings = Settings(**values)
    return _with_default_agent(settings, environ)


def _parse(parse: Callable[[Any], Any], raw: Any, source: str) -> Any:
    try:
        return parse(raw)
    except ValueError as exc:
        raise UsageError(f"{source} {exc}",
                         "Correct the value and run the command again.") from None


def _claude_settings(table: Any) -> ClaudeSettings:
    if not isinstance(table, dict):
        raise UsageError(f"{CONFIG_FILE} key `claude` must be a table ([claude])")
    values = {}
    for key, raw in table.items():
        if key not in CLAUDE_PARSERS:
            known = ", ".join(CLAUDE_PARSERS)
            raise UsageError(f"{CONFIG_FILE} key `claude.{key}` is not a setting",
                             f"Known [claude] keys: {known}.")
        values[key] = _parse(CLAUDE_PARSERS[key], raw, f"{CONFIG_FILE} key `claude.{key}`")
    return ClaudeSettings(**values)


def _prices(table: Any) -> dict[str, Price]:
    """[prices.<model>] tables: input and output (cache_read and cache_write default to
    Anthropic's multipliers of input), each a number of USD per million tokens."""
    if not isinstance(table, dict):
        raise UsageError(f"{CONFIG_FILE} key `prices` must hold tables ([prices.<model>])")
    prices = {}
    for model, rates in table.items():
        where = f"{CONFIG_FILE} table [prices.{model}]"
        if not isinstance(rates, dict):
            raise UsageError(f"{where} must be a table with {', '.join(PRICE_KEYS)}")
        unknown = sorted(set(rates) - set(PRICE_KEYS))
        missing = [key for key in ("input", "output") if key not in rates]
        if unknown or missing:
            wrong = ", ".join([*(f"unknown key `{k}`" for k in unknown),
                               *(f"missing `{k}`" for k in missing)])
            raise UsageError(f"{where}: {wrong}",
                             f"Give {', '.join(PRICE_KEYS)} in USD per million tokens "
                             "(cache_read and cache_write may be left out).")
        parsed = {key: _parse(_price_rate, rates[key], f"{where} key `{key}`")
                  for key in PRICE_KEYS if key in rates}
        # Anthropic's documented multipliers: cache reads 0.1x, 5-minute cache writes 1.25x
        parsed.setdefault("cache_read", parsed["input"] * 0.1)
        parsed.setdefault("cache_write", parsed["input"] * 1.25)
        prices[model] = Price(**parsed)
    return prices


def _check_unknown_keys(config: Mapping[str, Any]) -> None:
    known = {f.name for f in fields(Settings)} - {"dry_run", "json", "model_given", "only"}
    for key in config:
        if key not in known:
            raise UsageError(f"{CONFIG_FILE} key `{key}` is not a setting",
                             f"Known keys: {', '.join(sorted(known))}.")


def _with_default_agent(settings: Settings, environ: Mapping[str, str]) -> Settings:
    if settings.agent is not None:
        return settings
    if settings.agent_command is not None:
        agent = "command"
    elif environ.get("ANTHROPIC_API_KEY"):
        agent = "claude"
    else:
        return settings
    return replace(settings, agent=agent)


def read_config(repo: Path) -> dict[str, Any]:
    path = repo / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    import tomllib  # here: the light commands read no settings

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}", "Fix the file's syntax.") from None
