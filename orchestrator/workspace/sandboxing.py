"""The build's sandbox policy from its settings and agent preset: which credentials, hosts and
config paths the agent needs (the preset names them), `sandbox_allow`, the host of a base URL
the preset reads. Decided once on the coordinator, and once per attempt on a Ray worker (where
`auto` looks at that worker's bubblewrap)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from orchestrator.agents.presets import BASE_URL_VARIABLES, PRESETS
from orchestrator.door.sandbox import credentials_in
from orchestrator.door.sandbox_policy import SandboxPolicy, decide
from orchestrator.settings import Settings


def sandbox_policy(settings: Settings, repo: Path,
                   environ: Mapping[str, str] | None = None) -> SandboxPolicy:
    """The build's sandbox, decided before anything is created: `--sandbox bwrap` without a
    working bubblewrap is exit 2 here. The agent preset names the credentials, hosts and
    config paths its agent needs; `sandbox_allow` adds hosts, and the host of a base URL the
    preset reads (ANTHROPIC_BASE_URL) is allowed too."""
    environ = os.environ if environ is None else environ
    preset = PRESETS.get(settings.agent or "")
    credentials = preset.credentials if preset else ()
    base_urls = [environ[name] for name in BASE_URL_VARIABLES
                 if name in credentials and environ.get(name)]
    return decide(settings.sandbox, repo=repo, network=settings.sandbox_network,
                  check_network=settings.check_network, paths=settings.sandbox_paths,
                  hosts=preset.hosts if preset else (), extra_hosts=settings.sandbox_allow,
                  base_urls=base_urls, credentials=credentials_in(environ, credentials),
                  config_paths=preset.config_paths if preset else ())
