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


INSTALLED = [
    # py-spy prints an installed (or strict-editable) hito as hito/…; a link tree's absolute
    # path reads the same.
    ["<module> (hito/cli.py:30)", "handle_batch (hito/pipeline/agents/ingest.py:120)"],
    [
        "<module> (hito/cli.py:30)",
        "handle_batch (hito/pipeline/agents/ingest.py:120)",
        "validate (/w/build/__editable__.hito/hito/pipeline/stages/validate.py:70)",
        "inner (dataclasses.py:10)",
    ],
    [
        "<module> (hito/cli.py:30)",
        "validate (hito/pipeline/stages/validate.py:70)",
        "loads (orjson/__init__.py:1)",
    ],
]


def test_installed_hito_frames_are_the_project_and_grouped_by_file() -> None:
    raw = "\n".join(f"{';'.join(s)} {n}" for s, n in zip(INSTALLED, (10, 30, 60), strict=True))
    s = summarise(raw)
    assert {p["package"]: p["samples"] for p in s["by_package"]} == {"hito": 40, "orjson": 60}
    # Standard-library code Hito calls is Hito's time, filed under the innermost Hito frame.
    assert {p["file"]: p["samples"] for p in s["project_by_file"]} == {
        "hito/pipeline/agents/ingest.py": 10,
        "hito/pipeline/stages/validate.py": 30,
    }
    project = {p["function"]: p["samples"] for p in s["inclusive_project"]}
    assert project == {
        "handle_batch (hito/pipeline/agents/ingest.py)": 40,
        "validate (hito/pipeline/stages/validate.py)": 90,
    }
