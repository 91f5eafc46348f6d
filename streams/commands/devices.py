"""``hito devices import|seq``: the device registry, and where dedup stands for a device.

``import`` reads the YAML registry with its keys file (by default the ones the settings name)
or a CSV, validates every device as the workers' YAML loader does, and writes the registry file
(0600: it holds the keys), then reads it back as a worker would. Nothing printed names a key.
``seq`` reads a device's dedup state back from the pipeline's changelog (hito.ops.compacted).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from hito.commands.common import JSON_HELP, print_json
from hito.devices import DeviceRegistry, binary, sources
from hito.devices.registry import Columns
from hito.settings import load_settings

if TYPE_CHECKING:
    from hito.ops.compacted import Latest

devices_app = typer.Typer(help="The device registry.", no_args_is_help=True)


@devices_app.command("import")
def import_registry(
    out: Annotated[Path, typer.Option("--out", help="The registry file to write (0600)")],
    csv_file: Annotated[
        Path | None,
        typer.Option("--csv", help="A CSV: device_id,site,kind,status,key (hex)"),
    ] = None,
    devices_file: Annotated[
        Path | None,
        typer.Option("--devices", help="The YAML registry (default: the settings' one)"),
    ] = None,
    keys_file: Annotated[
        Path | None,
        typer.Option("--keys", help="Its keys file (default: the settings' one)"),
    ] = None,
) -> None:
    """Write the registry file a worker loads a million devices from in a fraction of a second:
    point HITO_PIPELINE__DEVICES_FILE at it (HITO_PIPELINE__DEVICE_KEYS_FILE is then unused)."""
    console = Console(stderr=True)
    started = time.monotonic()
    if csv_file is not None:
        if devices_file is not None or keys_file is not None:
            raise typer.BadParameter("--csv or --devices/--keys, not both")
        columns = Columns.of(sources.from_csv(csv_file))
        source = str(csv_file)
    else:
        if devices_file is None or keys_file is None:
            p = load_settings().pipeline
            devices_file = devices_file or p.devices_file
            keys_file = keys_file or p.device_keys_file
        if devices_file is None or keys_file is None:
            raise typer.BadParameter("no YAML registry and keys file given or set")
        columns = Columns.of(sources.from_yaml(devices_file, keys_file))
        source = f"{devices_file} with {keys_file}"
    size = binary.write(out, columns)
    written = time.monotonic() - started
    started = time.monotonic()
    registry = DeviceRegistry.load(out)
    loaded = time.monotonic() - started
    if not registry.same_entries(DeviceRegistry(columns)) or len(registry) != len(columns.flags):
        raise RuntimeError(f"{out} does not read back as written")
    console.print(
        f"wrote {out} from {source}: {len(registry):,} devices ({registry.revoked_count():,} "
        f"revoked) at {len(registry.sites):,} sites, {size / 1e6:.1f} MB, mode 0600, in "
        f"{written:.1f} s; a worker loads it in {loaded:.2f} s",
        soft_wrap=True,
    )


@devices_app.command("seq")
def device_seq(
    device_ids: Annotated[list[str], typer.Argument(help="Device ids", show_default=False)],
    app_id: Annotated[
        str, typer.Option(help="The workers' app id (hito worker --app-id)")
    ] = "hito",
    timeout_s: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to read the changelog in")
    ] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Where the pipeline's dedup stands for these devices: the lowest seq it takes as new
    whatever came before (a silenced device's SDK min_seq), and when a worker last wrote the
    state. Read from the dedup table's changelog, as the admin.

    A device whose numbers are below what the pipeline has seen of it is silenced: every
    event is counted stale or duplicate, none reaches the DLQ, DeviceSilent fires. It happens
    when its state folder is lost (a new SD card, a re-imaged terminal: its SDK numbers from 0
    again) or when it once sent a number far ahead (a corrupt counter after a power cut). Only
    the device can get past the mark: start its SDK with min_seq at the seq shown here."""
    from hito.ops.compacted import read_latest
    from hito.pipeline.stages.dedup import changelog_topic

    settings = load_settings()
    try:
        found = read_latest(
            settings, changelog_topic(app_id), device_ids, role="admin", timeout_s=timeout_s
        )
    except LookupError as exc:
        Console(stderr=True).print(
            f"{exc}: no worker of app id {app_id!r} has run yet, or another app id is meant "
            "(--app-id)",
            soft_wrap=True,
        )
        raise typer.Exit(1) from exc
    marks = [_mark(device_id, [f for f in found if f.key == device_id]) for device_id in device_ids]
    if as_json:
        print_json(marks)
        return
    console = Console()
    for mark in marks:
        # Plain lines, never wrapped: the number is copied into the device's configuration.
        console.print(f"{mark['device_id']}: {mark['summary']}", soft_wrap=True, highlight=False)


def _mark(device_id: str, found: list[Latest]) -> dict[str, Any]:
    """What `hito devices seq` says of one device, from its newest state in each partition."""
    from hito.pipeline.stages.dedup import SeqState
    from hito.schemas.envelope import MAX_SEQ

    states: list[tuple[Latest, SeqState]] = []
    unreadable: list[int] = []
    for latest in found:
        if latest.value is None:
            continue
        try:
            states.append((latest, SeqState.from_json(latest.value)))
        except (TypeError, ValueError):
            unreadable.append(latest.partition or 0)
    mark: dict[str, Any] = {"device_id": device_id, "min_seq": 0, "partitions": []}
    if not states:
        mark["summary"] = "min_seq 0: no state" + (
            f" (unreadable in partition {unreadable}: the worker starts it afresh)"
            if unreadable
            else " (no event of it accepted yet, or not this id)"
        )
        return mark
    high = max(state.high for _, state in states)
    written = max(latest.written_at for latest, _ in states if latest.written_at)
    mark["partitions"] = sorted(latest.partition for latest, _ in states)
    mark["written_at"] = written.isoformat(timespec="seconds")
    if high >= MAX_SEQ:
        mark["min_seq"] = None
        mark["summary"] = (
            f"no seq is left above its mark ({high}, the largest a device may send): it can "
            "only send again under a new device id (register one)"
        )
        return mark
    mark["min_seq"] = high + 1
    mark["summary"] = (
        f"min_seq {high + 1} (state written {mark['written_at']}, partition "
        f"{', '.join(map(str, mark['partitions']))})"
    )
    return mark
