"""py-spy collapsed stacks -> hottest functions and time by package."""

from __future__ import annotations

from hito.bench.profile import summarise

CLI = "<module> (streams/cli.py:30)"
STACKS = [
    [CLI, "run_forever (asyncio/base_events.py:607)", "EpollSelector.select (selectors.py:468)"],
    [
        CLI,
        "handle (streams/worker.py:141)",
        "validate (streams/stages/validate.py:70)",
        "model_validate_json (pydantic/main.py:700)",
    ],
    [
        CLI,
        "send (aiokafka/conn.py:400)",
        "_SelectorSocketTransport.write (asyncio/selector_events.py:1000)",
    ],
]
RAW = (
    "\n".join(f"{';'.join(stack)} {n}" for stack, n in zip(STACKS, (50, 30, 20), strict=True))
    + "\nnot a stack line\n"
)


def test_samples_by_package_self_and_project_inclusive() -> None:
    s = summarise(RAW)
    assert s["samples"] == 100
    packages = {p["package"]: p["percent"] for p in s["by_package"]}
    assert packages == {"idle": 50.0, "pydantic": 30.0, "aiokafka": 20.0}
    assert s["self"][0] == {
        "function": "EpollSelector.select (selectors.py)",
        "samples": 50,
        "percent": 50.0,
    }
    project = {p["function"]: p["samples"] for p in s["inclusive_project"]}
    assert project["validate (streams/stages/validate.py)"] == 30
    assert "<module> (streams/cli.py)" not in project  # entry frames are everywhere


def test_empty_profile() -> None:
    assert summarise("")["samples"] == 0
