"""``hito bench``: Hito against a consume-only ceiling, a naive pipeline and a Quix Streams
peer on the same data, on the running local stack (bench/README.md)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hito.commands.common import JSON_HELP, print_json
from hito.settings import REPO_ROOT, load_settings

# The contenders and extra measurements (hito.bench.harness.CONTENDERS, which a test checks
# against this; the harness is imported only when the command runs).
ALL = "ceiling,faust-floor,lane-floor,hito,quix,naive,latency,state"


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def bench(
    events: Annotated[int, typer.Option(min=100, help="Events produced once, read by all")] = (
        20_000
    ),
    only: Annotated[
        str,
        typer.Option(help=f"Comma-separated, of: {ALL}"),
    ] = ALL,
    workers: Annotated[str, typer.Option(help="Hito runs: worker counts, e.g. 1,2")] = "1,2",
    out: Annotated[
        Path | None, typer.Option(help="Report JSON (default: <state>/bench/<run>/report.json)")
    ] = None,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the bench topics")] = 4,
    bad_fraction: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.02,
    duplicate_fraction: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.02,
    naive_max_s: Annotated[
        float, typer.Option(min=1.0, help="Time box of the naive pipeline, seconds")
    ] = 60.0,
    latency_s: Annotated[
        float, typer.Option(min=0.0, help="Seconds of live load for latency (0: skip)")
    ] = 30.0,
    latency_rate: Annotated[
        float, typer.Option(min=0.0, help="Events/s for latency (0: half of Hito's max)")
    ] = 0.0,
    latency_warmup_s: Annotated[
        float,
        typer.Option(min=0.0, help="Seconds of load sent before the latency is measured"),
    ] = 10.0,
    state_devices: Annotated[
        int, typer.Option(min=0, help="Devices in the state-memory model (0: skip)")
    ] = 1_000_000,
    state_identities: Annotated[
        int, typer.Option(min=0, help="Distinct identities pseudonymised in the model")
    ] = 1_000_000,
    profile: Annotated[
        bool, typer.Option("--profile", help="py-spy the first Hito run's worker")
    ] = False,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the run's topics and InfluxDB buckets")
    ] = False,
    timeout_s: Annotated[float, typer.Option(min=10.0, help="Per contender")] = 900.0,
    as_json: Annotated[
        bool,
        typer.Option("--json", help=JSON_HELP + "; the tables and progress go to stderr"),
    ] = False,
) -> None:
    """Measure Hito end to end (throughput with 1 and 2 workers, latency, CPU, memory) against
    the baselines on the same data; writes a JSON report and prints a summary."""
    from hito.bench.dataset import Mix
    from hito.bench.harness import CONTENDERS, BenchOptions, run_bench
    from hito.stack import manager
    from hito.stack.process import stop_on_term
    from hito.stack.progress import make_runner

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    console = Console(stderr=True)
    chosen = _csv(only)
    if unknown := set(chosen) - set(CONTENDERS):
        raise typer.BadParameter(f"unknown: {', '.join(sorted(unknown))}", param_hint="--only")
    settings = load_settings()
    manager.up(settings, make_runner(console))
    if "quix" in chosen or profile:
        setup = REPO_ROOT / "bench" / "setup.sh"
        if not setup.is_file():
            raise typer.BadParameter(
                "the Quix peer and --profile need a source checkout (bench/setup.sh); "
                "leave them out with --only"
            )
        subprocess.run(["bash", str(setup)], check=True)
    options = BenchOptions(
        events=events,
        only=chosen,
        workers=tuple(int(n) for n in _csv(workers)),
        out=out,
        partitions=partitions,
        mix=Mix(bad_fraction=bad_fraction, duplicate_fraction=duplicate_fraction),
        naive_max_s=naive_max_s,
        latency_s=latency_s,
        latency_rate=latency_rate,
        latency_warmup_s=latency_warmup_s,
        state_devices=state_devices,
        state_identities=state_identities,
        profile=profile,
        timeout_s=timeout_s,
        keep=keep,
    )
    with stop_on_term():  # a stopped bench stops its contenders (their finally blocks)
        report = run_bench(settings, options, Console(stderr=as_json))
    if as_json:
        from hito.bench.report import summary

        print_json(summary(report))
    if report["errors"]:
        raise typer.Exit(1)
