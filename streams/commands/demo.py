"""``hito demo``: the whole platform on the local stack, then a summary and a picture."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hito.runtime import load_runtime
from hito.settings import load_settings


def demo(
    rate: Annotated[float, typer.Option(min=1.0, help="Fleet messages per second")] = 40.0,
    normal: Annotated[float, typer.Option(min=0.0, help="Seconds of normal traffic first")] = 90.0,
    surge: Annotated[
        float, typer.Option(min=0.0, help="Seconds Chacalluta surges (0: no surge)")
    ] = 150.0,
    after: Annotated[float, typer.Option(min=0.0, help="Seconds of normal traffic after")] = 60.0,
    outage: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds a Santa Rosa terminal's uplink is down, from 30 s in (0: no outage)",
        ),
    ] = 120.0,
    outage_span: Annotated[
        float,
        typer.Option(min=60.0, help="Seconds before it reconnects its held events are spread over"),
    ] = 3600.0,
    out_dir: Annotated[
        Path | None, typer.Option(help="Where summary.json and demo.png go (default: state dir)")
    ] = None,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave the worker running for live watching")
    ] = False,
) -> None:
    """Run the simulated fleet of the reference crossing through the whole platform (one
    worker, bad events, duplicates, one surge at Chacalluta, one terminal offline whose late
    events revise the past hour), then print what happened."""
    from hito.demo import report
    from hito.demo.run import OFFLINE_DEVICE, DemoPlan, run_demo
    from hito.stack import manager
    from hito.stack.process import stop_on_term
    from hito.stack.progress import make_runner

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    console = Console(stderr=True)
    settings = load_settings()
    manager.up(settings, make_runner(console))
    runtime = load_runtime(settings)
    plan = DemoPlan(
        rate=rate,
        normal_s=normal,
        surge_s=surge,
        after_s=after,
        offline_device=OFFLINE_DEVICE if outage else None,
        offline_for_s=outage,
        offline_span_s=outage_span,
    )
    target = out_dir or settings.state_dir / "demo"
    with stop_on_term():  # a stopped demo stops its worker and keeps its fleet's seq numbers
        run = run_demo(runtime, plan, target, console, keep_running=keep_running)
    summary = report.summarise(runtime, plan, run)
    summary_path = report.write_summary(summary, target)
    png = report.render_png(runtime, plan, run, summary, target / "demo.png")
    print_summary(summary, Console())
    Console().print(f"summary: {summary_path}\npicture: {png}")
    if run.worker is not None:
        Console().print(
            f"the worker keeps running (pid {run.worker.proc.pid}); stop it with "
            f"`kill {run.worker.proc.pid}`; `hito status` shows the live view"
        )


def print_summary(summary: dict[str, Any], console: Console) -> None:
    events = Table(title="Events")
    events.add_column("")
    events.add_column("count", justify="right")
    events.add_row("sent by the fleet", str(summary["sent_total"]))
    for outcome, n in summary["events"].items():
        events.add_row(f"  {outcome}", str(n))
    for reason, n in summary["rejected_by_reason"].items():
        events.add_row(f"    rejected: {reason}", str(n))
    console.print(events)
    points = Table(title=f"Points written to InfluxDB (policy {summary['policy_version']})")
    points.add_column("measurement")
    points.add_column("points", justify="right")
    for measurement, n in sorted(summary["points_by_measurement"].items()):
        points.add_row(measurement, str(n))
    points.add_row("crossings counted (sum of `crossings`)", str(summary["crossings_in_influxdb"]))
    console.print(points)
    pages = Table(title=f"Pages received by `hito pager` ({len(summary['pages'])})")
    for col in ("received (UTC)", "urgency", "state", "alert", "site", "runbook"):
        pages.add_column(col)
    for p in summary["pages"]:
        pages.add_row(
            p["received_at"][11:19],
            p["urgency"],
            p["status"],
            p["alertname"],
            p["site"] or "",
            p["runbook_url"],
        )
    console.print(pages)
    if summary.get("revised"):
        from hito.demo.revised import revised_lines

        revised = Table(title="Revised by a late upload (InfluxDB `revisions`)", show_header=False)
        revised.add_column("")
        revised.add_column("")
        for label, text in revised_lines(summary["revised"]):
            revised.add_row(label, text)
        console.print(revised)
    where = Table(title="Where to look", show_header=False)
    where.add_column("")
    where.add_column("")
    for key, value in summary["where_to_look"].items():
        where.add_row(key, value)
    console.print(where)
