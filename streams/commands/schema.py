"""``hito schema export``: the published event contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hito.schemas import signing_vectors
from hito.schemas.export import export

schema_app = typer.Typer(help="Published event contracts.", no_args_is_help=True)


@schema_app.command("export")
def schema_export(
    directory: Annotated[
        Path,
        typer.Option(
            "--dir",
            help="Where to write: <dir>/jsonschema/*.schema.json and <dir>/signing-vectors.json "
            "(the repository's committed copies: --dir schemas)",
        ),
    ] = Path(),
) -> None:
    """Write the JSON Schemas device makers build against, and the signature test vectors."""
    for path in export(directory / "jsonschema"):
        Console().print(f"wrote {path}")
    Console().print(f"wrote {signing_vectors.write(directory / 'signing-vectors.json')}")
