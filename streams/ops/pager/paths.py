"""Where the pager keeps its state under the state directory."""

from __future__ import annotations

from pathlib import Path

from hito.settings import HitoSettings


def page_log_path(settings: HitoSettings) -> Path:
    """The durable page log (JSON lines) that `hito pager serve` writes and tools read."""
    return settings.state_dir / "pager" / "pages.jsonl"
