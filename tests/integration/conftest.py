"""One real stack per test session: reuse a running one, or start it and stop it afterwards.

There is no skip here: when a service cannot be started the session errors, so CI can never
pass without the real Kafka, InfluxDB, Prometheus and Alertmanager.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rich.console import Console

from hito.settings import HitoSettings, load_settings
from hito.stack import manager
from hito.stack.progress import make_runner


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> Iterator[HitoSettings]:
    settings = load_settings()
    started = manager.up(settings, make_runner(Console(stderr=True)))
    yield settings
    if started:
        manager.down(settings, only=started)
