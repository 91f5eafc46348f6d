"""``hito device upload-log|status|sample-log``: act as a device (a drone ground station)
from the command line, with the device SDK's outbox (docs/ingestion.md, "Store and forward").

``upload-log`` runs as the ``device`` Kafka role. It queues a flight log's fixes in the
device's outbox and waits for the broker to acknowledge them; interrupted (killed, broker
gone), it is simply run again: fixes queued before are not queued again, and the outbox sends
what it still holds. It must use the station's own state folder: a new one would number the
fixes from ``seq`` 0 again, below what the station sent, and the pipeline would drop them as
stale or duplicate; so it creates one only when told (``--new-state``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

device_app = typer.Typer(
    help="Act as a device: upload a drone flight log, look at a device's outbox.",
    no_args_is_help=True,
)

STATE_DIR_HELP = (
    "The device's state folder (outbox, upload journal); default: <state dir>/devices/<id>. "
    "One process at a time."
)


NEW_STATE_HELP = (
    "Create the state folder if it holds no device state yet: only for a station that has never "
    "sent (a new folder numbers its events from seq 0 again)"
)


def _state_dir(given: Path | None, device_id: str) -> Path:
    if given is not None:
        return given
    from hito.settings import load_settings

    return load_settings().state_dir / "devices" / device_id


@device_app.command("upload-log")
def upload_log(
    log: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Flight log (JSONL)")],
    device: str = typer.Option(..., help="The drone ground station's device id"),
    state_dir: Annotated[Path | None, typer.Option(help=STATE_DIR_HELP)] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(help="The device key (hex) in a file; default: the registry's key file"),
    ] = None,
    timeout: float = typer.Option(
        300.0, min=0.0, help="Seconds to wait for the broker's acknowledgements"
    ),
    new_state: Annotated[bool, typer.Option("--new-state", help=NEW_STATE_HELP)] = False,
) -> None:
    """Publish a drone flight log (hito.flight-log/1) as signed drone.telemetry/1 events with
    their fix times; resumable: run it again after an interruption."""
    from hito.credentials import client_config
    from hito.device.sdk import DeliveryTimeout, DeviceClient
    from hito.devices import DeviceRegistry
    from hito.settings import load_settings

    settings = load_settings()
    registered = DeviceRegistry.load(*settings.pipeline.registry_files()).get(device)
    if registered is None or registered.revoked:
        raise typer.BadParameter(
            f"{device} is not an active registered device", param_hint="--device"
        )
    if registered.kind != "drone":
        raise typer.BadParameter(f"{device} is a {registered.kind}, not a drone ground station")
    folder = _state_dir(state_dir, device)
    if not new_state and not (folder / "device.json").exists():
        raise typer.BadParameter(
            f"{folder} holds no device state; a new one would number the fixes from seq 0, and "
            "the pipeline drops numbers the station already used as stale or duplicate. Give "
            "the folder the station's SDK uses, or add --new-state if it has never sent",
            param_hint="--state-dir",
        )
    key = _read_key(key_file) if key_file else registered.key
    console = Console()
    client = DeviceClient(
        device_id=device,
        site=registered.site,
        key=key,
        state_dir=folder,
        producer_config=client_config(settings.kafka, "device"),
        topic_for_source=dict(settings.pipeline.raw_topics),
    )
    try:
        report = client.upload_flight_log(log)
        queued = (
            f"{report.queued} queued now (seq {report.first_seq} to {report.last_seq})"
            if report.queued
            else "none new"
        )
        console.print(
            f"{log.name}: flight {', '.join(report.flights)}, {report.fixes} fixes: {queued}, "
            f"{report.already_queued} queued before"
        )
        if report.too_old:
            Console(stderr=True).print(
                f"[yellow]{report.too_old} fixes not sent:[/] older than the outbox's max age "
                "(the privacy policy's device_outbox retention)"
            )
        try:
            client.flush(timeout)
        except DeliveryTimeout as exc:
            Console(stderr=True).print(f"[yellow]not delivered yet:[/] {exc}")
            raise typer.Exit(1) from exc
        console.print("delivered: the broker acknowledged every queued event")
    finally:
        client.close()


def _read_key(path: Path) -> bytes:
    """The device key from a file of hex; an error names the file, never its content."""
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError:
        key = b""
    if len(key) < 16:
        raise typer.BadParameter(f"{path} does not hold a hex key of at least 128 bits")
    return key


@device_app.command("status")
def status(
    device: str = typer.Option(..., help="Device id"),
    state_dir: Annotated[Path | None, typer.Option(help=STATE_DIR_HELP)] = None,
) -> None:
    """What waits in a device's outbox (opens it: the device's own process must be stopped)."""
    from hito.device.outbox import Outbox

    folder = _state_dir(state_dir, device) / "outbox"
    if not folder.exists():
        raise typer.BadParameter(f"no outbox at {folder}")
    box = Outbox(folder)
    try:
        s = box.status()
    finally:
        box.close()

    def at(ms: int | None) -> str:
        return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()

    console = Console()
    console.print(f"outbox {folder}")
    console.print(f"  waiting: {s.pending_events} events, {s.pending_bytes} bytes")
    console.print(f"  queued since: {at(s.first_appended_ms)}")
    console.print(f"  next seq: {s.next_seq}")
    if s.expired.events:
        console.print(
            f"  [red]expired:[/] {s.expired.events} events waited longer than the outbox's max "
            f"age (seq {s.expired.first_seq} to {s.expired.last_seq}, last at "
            f"{at(s.expired.at_ms)})"
        )
    for problem in s.problems:
        console.print(f"  [red]recovery:[/] {problem}")


@device_app.command("sample-log")
def sample_log(
    out: Annotated[Path, typer.Argument(dir_okay=False, help="Where to write the log")],
    device: str = typer.Option("drone-gs-cl-01", help="Ground station (its site's base)"),
    landed_ago: float = typer.Option(3600.0, min=0.0, help="Seconds since landing"),
    duration: float = typer.Option(2400.0, min=60.0, help="Flight time, seconds"),
    interval: float = typer.Option(5.0, min=0.1, help="Seconds between fixes"),
    seed: int = typer.Option(7),
) -> None:
    """Write a simulated flight log (synthetic data) for trying upload-log."""
    from hito.device.simulate.flight_log import flight_fixes, write_flight_log
    from hito.devices import DeviceRegistry
    from hito.settings import load_settings

    settings = load_settings()
    registered = DeviceRegistry.load(*settings.pipeline.registry_files()).get(device)
    if registered is None or registered.kind != "drone":
        raise typer.BadParameter(f"{device} is not a registered drone ground station")
    landed = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=landed_ago)
    takeoff = landed - timedelta(seconds=duration)
    fixes = flight_fixes(
        site=registered.site,
        flight_id=f"F{takeoff:%Y%m%d%H%M}-{device[-2:]}",
        takeoff=takeoff,
        duration_s=duration,
        interval_s=interval,
        seed=seed,
    )
    write_flight_log(out, fixes)
    Console().print(
        f"{out}: {len(fixes)} fixes from {fixes[0]['fix_time']} to {fixes[-1]['fix_time']}"
    )
