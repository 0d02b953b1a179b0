"""Whether bubblewrap can sandbox here: the sandbox tests run only where it can, and say why not
(`.ci/run` installs Debian's bubblewrap when it runs as root)."""

from __future__ import annotations

import pytest

from orchestrator.door.sandbox import probe

BWRAP_PROBLEM = probe()
needs_bwrap = pytest.mark.skipif(
    BWRAP_PROBLEM is not None,
    reason=f"bubblewrap cannot sandbox here ({BWRAP_PROBLEM}): "
           "`apt-get install -y bubblewrap` (done by .ci/run as root)")
