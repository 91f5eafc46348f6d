"""The pager's bearer token: who may post a page.

The token is a random secret in a file of the state directory (mode 0600), created once by
whichever starts first (`hito up` before Alertmanager and the pager, or `hito pager serve`),
never overwritten: Alertmanager reads the same file (``credentials_file``) on every
notification. Nothing secret is in the repository.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

TOKEN_FILE_ENV = "HITO_PAGER_TOKEN_FILE"  # noqa: S105 (a variable name, not a secret)
TOKEN_BYTES = 32
# A token shorter than this was not made by ensure_token: refuse it rather than trust it.
MIN_TOKEN_CHARS = 32


def token_path(state_dir: Path) -> Path:
    """The token file: ``$HITO_PAGER_TOKEN_FILE``, else ``<state_dir>/pager/token``. One
    answer for `hito up` (which gives it to Alertmanager) and the pager it starts."""
    override = os.environ.get(TOKEN_FILE_ENV)
    return Path(override) if override else state_dir / "pager" / "token"


class TokenError(Exception):
    """The token file cannot be used; ``str()`` is the operator's message."""


def ensure_token(path: Path) -> bool:
    """Create ``path`` with a new random token (mode 0600, fsync'd) unless it exists.

    Returns whether it created one. An existing file is never replaced: a running
    Alertmanager may be sending it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        # O_EXCL: two starters racing create one token, not two.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        os.write(fd, token.encode())  # no newline: the whole file is the credential
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def read_token(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace ignored, as Alertmanager does)."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise TokenError(f"cannot read the pager token {path}: {exc.strerror}") from None
    if len(token) < MIN_TOKEN_CHARS:
        raise TokenError(
            f"the pager token in {path} is shorter than {MIN_TOKEN_CHARS} characters; "
            "delete the file and start again to get a new random one"
        )
    return token


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` as a Bearer credential.

    Constant-time in the credential, so the answer's timing does not reveal how much of a
    guess was right.
    """
    if not authorization:
        return False
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credential.strip().encode(), token.encode())
