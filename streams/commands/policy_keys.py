"""``hito policy keys init|rotate|status|destroy-expired``: the pseudonym key store
(docs/privacy.md, "Keys").

No command prints a key. Files that carry keys between hosts (a store copy, a rotation seed)
are deleted by the command that installs them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hito.pipeline.keystore import (
    Chain,
    KeyStore,
    KeyStoreError,
    Segment,
    new_key,
    read_chain_file,
    write_chain_file,
)
from hito.pipeline.pseudonyms import epoch_of, epoch_start, first_open_epoch
from hito.runtime import key_grace_s, key_store_path
from hito.schemas.privacy.policy import load_policy
from hito.settings import load_settings

keys_app = typer.Typer(
    help="The pseudonym key store: provision, rotate, inspect (never prints a key).",
    no_args_is_help=True,
)


def _epochs() -> tuple[Path, dict[str, int], int]:
    settings = load_settings()
    policy = load_policy(settings.privacy.policy_file)
    epochs = {p.name: p.epoch_s for p in policy.linking_purposes if p.epoch_s is not None}
    return key_store_path(settings), epochs, key_grace_s(settings.pipeline)


@keys_app.command("init")
def init(
    from_copy: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A copy of the first host's store: installed here, then the copy is deleted",
        ),
    ] = None,
) -> None:
    """Provision this host's key store: fresh random keys (the first host), or a copy of the
    first host's store (every other host: the same keys, then each host ratchets alone)."""
    path, epochs, grace = _epochs()
    console = Console()
    if from_copy is None:
        KeyStore.provision(path, epochs, datetime.now(UTC), grace)
        console.print(f"new key store {path} for {', '.join(sorted(epochs))}")
        console.print(
            "More hosts: copy this file now, over a secure channel, to each one and run "
            "`hito policy keys init --from <copy>` there (it deletes the copy). A copy holds "
            "the key of every later epoch: keep none."
        )
        return
    chains = read_chain_file(from_copy)
    missing = sorted(set(epochs) - set(chains))
    if missing:
        raise KeyStoreError(f"{from_copy}: no keys for {', '.join(missing)}")
    if path.exists():
        raise KeyStoreError(f"{path}: a key store exists already")
    write_chain_file(path, chains)
    from_copy.unlink()
    KeyStore.open(path).destroy_expired(datetime.now(UTC), grace)
    console.print(f"installed {path} from the copy; the copy {from_copy} is deleted")


@keys_app.command("rotate")
def rotate(
    purpose: Annotated[str, typer.Option(help="The purpose whose keys change")],
    from_epoch: Annotated[
        int | None, typer.Option(help="First epoch of the new key (default: the next epoch)")
    ] = None,
    seed_out: Annotated[
        Path | None,
        typer.Option(help="Also write the new key here, for the other hosts (0600)"),
    ] = None,
    seed_in: Annotated[
        Path | None,
        typer.Option(help="Use the key another host wrote with --seed-out (then delete it)"),
    ] = None,
) -> None:
    """A fresh random key for a purpose from a future epoch boundary on (e.g. after the store
    may have been copied: whoever holds the old one can compute every later key until then)."""
    path, epochs, _ = _epochs()
    if purpose not in epochs:
        raise typer.BadParameter(f"{purpose} has no linkability horizon in the policy")
    now = datetime.now(UTC)
    store = KeyStore.open(path)
    if seed_in is not None:
        given = read_chain_file(seed_in).get(purpose)
        if given is None or len(given.segments) != 1:
            raise KeyStoreError(f"{seed_in}: not a rotation seed for {purpose}")
        (segment,) = given.segments
        try:
            store.rotate(purpose, segment.from_epoch, segment.key, now)
        finally:
            # Deleted even when refused (its epoch has begun here): a seed left behind holds
            # every key of the new chain.
            seed_in.unlink()
        first = segment.from_epoch
    else:
        first = from_epoch if from_epoch is not None else epoch_of(now, epochs[purpose]) + 1
        key = new_key()
        store.rotate(purpose, first, key, now)
        if seed_out is not None:
            write_chain_file(seed_out, {purpose: Chain(epochs[purpose], (Segment(first, key),))})
    start = epoch_start(first, epochs[purpose]).isoformat()
    Console().print(f"{purpose}: a new key from epoch e{first} ({start}) on")
    if seed_out is not None:
        Console().print(
            f"[yellow]{seed_out} holds every key of the new chain:[/] copy it to each other "
            "host over a secure channel (`--seed-in` deletes the copy there), then delete it "
            "here (e.g. `shred -u`) before the epoch begins"
        )


@keys_app.command("destroy-expired")
def destroy_expired() -> None:
    """Destroy the keys of closed epochs now (what a running worker does every few minutes):
    for a host whose store outlives its worker (stopped, standby, retired), run it from a
    timer, e.g. hourly. Such a store kept a closed day's key, from which every later day's key
    follows, for as long as no worker ran."""
    path, _, grace = _epochs()
    moved = KeyStore.open(path).destroy_expired(datetime.now(UTC), grace)
    console = Console()
    for purpose, first in sorted(moved.items()):
        console.print(f"{purpose}: keys before e{first} destroyed")
    if not moved:
        console.print("no key of a closed epoch was held")


@keys_app.command("status")
def status() -> None:
    """Per purpose: the epoch length, the oldest epoch whose key is still held, rotations.
    Exit 1 when a closed epoch's key is still held (run `destroy-expired`)."""
    path, epochs, grace = _epochs()
    store = KeyStore.open(path)
    now = datetime.now(UTC)
    mode = oct(path.stat().st_mode & 0o777)
    table = Table(title=f"Pseudonym key store {path} (mode {mode}; keys closed {grace} s after)")
    for col in ("purpose", "epoch", "oldest key held", "later rotations", "in policy"):
        table.add_column(col)
    for purpose, chain in sorted(store.chains.items()):
        first = chain.first_epoch
        rotations = ", ".join(f"e{s.from_epoch}" for s in chain.segments[1:]) or "-"
        table.add_row(
            purpose,
            f"{chain.epoch_s // 3600} h",
            f"e{first} ({epoch_start(first, chain.epoch_s):%Y-%m-%d %H:%M} UTC)",
            rotations,
            "yes" if purpose in epochs else "no",
        )
    Console().print(table)
    overdue = sorted(
        purpose
        for purpose, chain in store.chains.items()
        if chain.first_epoch < first_open_epoch(now, chain.epoch_s, grace)
    )
    if overdue:
        Console(stderr=True).print(
            f"[red]keys of closed epochs are still held[/] ({', '.join(overdue)}): no worker "
            "has destroyed them; run `hito policy keys destroy-expired` (and from a timer on "
            "a host whose store outlives its worker)"
        )
        raise typer.Exit(1)
