"""Alertmanager cannot run here in its image: the script docker-compose.yml starts it with is
run with dash (POSIX sh: bash would accept what the image's busybox sh may not) and a stand-in
for /bin/alertmanager, as the image's user would run it: uid nobody, with the group compose
adds."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hito.settings import REPO_ROOT
from tests.unit.infra.compose_file import services

START = REPO_ROOT / "infra" / "alertmanager" / "compose-start.sh"
NOBODY = 65534
STAND_IN = ["sh", "-c", "echo alertmanager started"]


def _start(
    token_file: Path, *command: str, as_user: list[str] | None = None, script: Path = START
) -> tuple[int, str, str]:
    done = subprocess.run(
        [*(as_user or []), "dash", str(script), *command],
        env={"PATH": os.environ["PATH"], "HITO_PAGER_TOKEN_FILE": str(token_file)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode, done.stdout, done.stderr


def test_alertmanager_starts_with_a_readable_token(tmp_path: Path) -> None:
    token = tmp_path / "pager.token"
    token.write_text("p" * 43)
    assert _start(token, *STAND_IN) == (0, "alertmanager started\n", "")


@pytest.mark.parametrize(
    ("content", "why"),
    [(None, "no pager token at"), ("", "is empty"), (" \n\t\n", "is empty")],
    ids=["missing", "empty", "blank"],
)
def test_alertmanager_does_not_start_without_a_token(
    tmp_path: Path, content: str | None, why: str
) -> None:
    token = tmp_path / "pager.token"
    if content is not None:
        token.write_text(content)
    code, out, err = _start(token, *STAND_IN)
    assert (code, out) == (1, "")
    assert err.startswith("alertmanager not started: ") and why in err and str(token) in err


def test_alertmanager_does_not_start_without_its_token_setting(tmp_path: Path) -> None:
    done = subprocess.run(
        ["dash", str(START), *STAND_IN], env={"PATH": os.environ["PATH"]}, capture_output=True
    )
    assert done.returncode != 0 and b"set HITO_PAGER_TOKEN_FILE" in done.stderr


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the image's user can enter (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="hito-am-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another uid and chown")
def test_the_token_must_be_readable_by_the_group_compose_adds(shared_dir: Path) -> None:
    """The compose arrangement: the token owned 10001:10001 mode 0440 (as the pager reads it),
    Alertmanager running as nobody with the groups of its group_add. The same file at mode 0400
    (readable by the pager only) is refused, and named."""
    groups = ",".join(services()["alertmanager"]["group_add"])
    as_image_user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", f"--groups={groups}"]
    script = Path(shutil.copy(START, shared_dir))  # wherever the checkout is, nobody reads it
    script.chmod(0o644)
    token = shared_dir / "pager.token"
    token.write_text("p" * 43)
    os.chown(token, 10001, 10001)
    token.chmod(0o440)
    started = _start(token, *STAND_IN, as_user=as_image_user, script=script)
    assert started == (0, "alertmanager started\n", "")
    token.chmod(0o400)
    code, out, err = _start(token, *STAND_IN, as_user=as_image_user, script=script)
    assert (code, out) == (1, "")
    assert f"the pager token {token} is not readable by uid {NOBODY}" in err


def test_compose_runs_alertmanager_through_the_script() -> None:
    am = services()["alertmanager"]
    assert am["entrypoint"] == ["sh", "/etc/hito/alertmanager/compose-start.sh"]
    assert (
        "./infra/alertmanager/compose-start.sh:/etc/hito/alertmanager/compose-start.sh:ro"
        in (am["volumes"])
    )
    assert am["command"][0] == "/bin/alertmanager"  # the image's entrypoint, which it replaces
    [token_mount] = [v for v in am["volumes"] if isinstance(v, dict)]
    assert am["environment"]["HITO_PAGER_TOKEN_FILE"] == token_mount["target"]
