"""How the pipeline's agents produce to Kafka, as one type: ``Send``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[str, bytes | None, bytes], Awaitable[Any]]
"""Sends (topic, key, value); returns the delivery future to wait on (or None when there is
nothing to wait for, as in agent tests)."""
