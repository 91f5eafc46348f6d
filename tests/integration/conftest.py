"""One real stack per test session: reuse a running one, or start it and stop it afterwards.

There is no skip here: when a service cannot be started the session errors, so CI can never
pass without the real Kafka, InfluxDB, Prometheus and Alertmanager.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from rich.console import Console

from hito.settings import HitoSettings, load_settings
from hito.stack import manager
from hito.stack.progress import make_runner
from tests.integration.stack.paging_outage import OUTAGE_TEST, Background, outage_scenario


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


@pytest.fixture(scope="session", autouse=True)
def paging_outage(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Background]:
    """The paging-service outage (stack/paging_outage.py) runs beside the rest of the session
    from its first integration test on, when its test was selected; its test waits for it.
    It starts once the shared stack is up, when the session needs one (its start-up would
    otherwise share the cores with the scenario's first, timed, steps)."""
    stopping = threading.Event()
    scenario = outage_scenario(tmp_path_factory.mktemp("paging-outage"), stopping)
    items = request.session.items
    if any(item.name == OUTAGE_TEST for item in items):
        if any("stack" in getattr(item, "fixturenames", ()) for item in items):
            request.getfixturevalue("stack")
        scenario.start()
    yield scenario
    stopping.set()  # a session that ended before the test: stop waiting, stop its services
    scenario.join(60)
