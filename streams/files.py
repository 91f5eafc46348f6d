"""Small file helpers shared by the stack, provisioning, credentials and the pager: a lock that
serialises commands on one state directory, writing a private file (a secret) atomically, and
reading a secret file without ever quoting it in an error."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hito.schemas.errors import describe, field_names


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Serialise `hito up`/`hito down` (and token provisioning) on one state directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_private(path: Path, content: str | bytes, *, mode: int = 0o600) -> None:
    """Write ``content`` to ``path`` readable by this user only (0600; ``mode=0o640`` also by
    this user's group, for a file another service reads by joining it), atomically: a reader
    sees the old file or the new one, never half of it, and never a moment of wider
    permissions (a temporary file left by a crash keeps its mode: it is set again). The
    rename is fsync'd with its directory: after a power cut the file is the old or the new
    one, never missing or empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content.encode() if isinstance(content, str) else content)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


M = TypeVar("M", bound=BaseModel)


class SecretFileError(ValueError):
    """A secret file that cannot be read or does not validate. The message names the file,
    where and what is wrong, never the file's content: YAML's and pydantic's own messages quote
    the offending text, which in a keys file is the key."""


def read_secret_yaml(
    path: Path, model: type[M], *, also_named: Callable[[str], bool] | None = None
) -> M:
    """Parse ``path`` as YAML and validate it as ``model``; errors as SecretFileError.
    ``also_named``: other names an error may echo (a registry's device ids; never in a file
    whose dict keys could be its secrets)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as exc:
        # Where only: YAML's problem text quotes the file (an unknown tag or alias is the
        # text after its "!" or "*", which may be a password that starts with one).
        where = exc.problem_mark
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise SecretFileError(f"{path}: not valid YAML{at}") from None
    except yaml.YAMLError:
        raise SecretFileError(f"{path}: not valid YAML") from None
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        # A key the model does not have may be a secret written without its own key (a
        # password alone in a flow mapping): <unknown>, like any name the file chose.
        names = field_names(model)
        known = names if also_named is None else (lambda n: n in names or also_named(n))
        raise SecretFileError(f"{path}: {describe(exc, known, limit=5)}") from None
