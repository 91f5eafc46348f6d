"""The Prometheus and Alertmanager tools the configs are checked with: the cached builds at the
settings' versions (what `hito up` runs), never whatever else is on PATH."""

from __future__ import annotations

from hito.settings import HitoSettings
from hito.stack.monitoring import tool_path


def tool(name: str) -> str:
    path = tool_path(HitoSettings(), name)
    # No skip: `make setup` builds them; a missing tool is a failed setup.
    assert path.is_file(), (
        f"{path} missing: run `make setup` (infra/prometheus|alertmanager/build.sh)"
    )
    return str(path)
