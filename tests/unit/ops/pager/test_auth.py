"""The pager's bearer token: random, private, created once, never replaced; compared whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from hito.ops.pager.auth import TokenError, bearer_matches, ensure_token, read_token, token_path

TOKEN = "x" * 43


def test_a_new_token_is_random_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "pager" / "token"
    assert ensure_token(path) is True
    assert path.stat().st_mode & 0o777 == 0o600
    first = read_token(path)
    assert len(first) == 43  # 32 random bytes, URL-safe base64
    assert ensure_token(path) is False  # Alertmanager may be sending it: never replaced
    assert read_token(path) == first
    other = tmp_path / "other" / "token"
    ensure_token(other)
    assert read_token(other) != first


def test_a_token_file_is_read_as_alertmanager_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    assert read_token(path) == TOKEN


@pytest.mark.parametrize("content", ["", "short\n", " " * 40])
def test_a_short_or_empty_token_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(TokenError, match="shorter than 32 characters"):
        read_token(path)


def test_a_missing_token_file_is_an_operator_message(tmp_path: Path) -> None:
    with pytest.raises(TokenError) as raised:
        read_token(tmp_path / "nope")
    assert str(raised.value) == (
        f"cannot read the pager token {tmp_path / 'nope'}: No such file or directory"
    )


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),  # the scheme is case-insensitive (RFC 6750)
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        ("Bearer ", False),
        ("", False),
        (None, False),
    ],
)
def test_only_the_whole_token_as_a_bearer_credential_is_accepted(
    header: str | None, accepted: bool
) -> None:
    assert bearer_matches(header, TOKEN) is accepted


def test_the_token_path_is_the_state_directory_unless_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HITO_PAGER_TOKEN_FILE", raising=False)
    assert token_path(tmp_path) == tmp_path / "pager" / "token"
    monkeypatch.setenv("HITO_PAGER_TOKEN_FILE", "/run/secrets/pager-token")
    assert token_path(tmp_path) == Path("/run/secrets/pager-token")
