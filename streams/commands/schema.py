"""``hito schema export``: the published event contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hito.schemas import signing_vectors
from hito.schemas.export import EXPORT_DIR, export

schema_app = typer.Typer(help="Published event contracts.", no_args_is_help=True)


@schema_app.command("export")
def schema_export(
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the files")] = (
        EXPORT_DIR
    ),
    vectors: Annotated[
        Path, typer.Option("--vectors", help="Where to write the signature test vectors")
    ] = signing_vectors.VECTORS_PATH,
) -> None:
    """Write the JSON Schemas device makers build against, and the signature test vectors."""
    for path in export(directory):
        Console().print(f"wrote {path}")
    Console().print(f"wrote {signing_vectors.write(vectors)}")
