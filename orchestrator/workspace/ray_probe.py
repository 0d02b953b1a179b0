"""What the coordinator checks on every Ray node before the first task (SPEC 14): Python minor,
Ray version, git, orchestrate's dependencies, and a digest of the orchestrate code the node
would import. Ray ships this module's functions by value (cloudpickle), so they run on a node
that has no orchestrate installed; they import only the standard library (and Ray).
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

DEPENDENCIES = ("trio", "anthropic", "filelock", "click", "rich")  # import names
PACKAGES = ("orchestrator", "merge")


def node_report() -> dict[str, str]:
    import platform

    import ray

    try:
        found = subprocess.run(["git", "--version"], capture_output=True, text=True,
                               check=False, timeout=30)
        git_version = found.stdout.strip() or "missing"
    except (OSError, subprocess.TimeoutExpired):
        git_version = "missing"
    missing = [name for name in DEPENDENCIES if importlib.util.find_spec(name) is None]
    node = ray.get_runtime_context().get_node_id()
    return {"python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "ray": ray.__version__, "git": git_version, "missing": ", ".join(missing),
            "code": code_digest(), "node": f"node {node} ({platform.node()})"}


def code_digest() -> str:
    """A digest of the orchestrate packages this Python would import ("" if it has none)."""
    digest = hashlib.sha256()
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            return ""
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{name}/{path.relative_to(root)}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
