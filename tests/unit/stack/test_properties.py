from __future__ import annotations

from hito.stack.services import apply_properties


def test_overrides_replace_values_and_keep_comments() -> None:
    text = "# comment with log.dirs=x\nlog.dirs=/var/lib/kafka/data\nnode.id=1\n"
    out = apply_properties(text, {"log.dirs": "/tmp/k", "listeners": "PLAINTEXT://127.0.0.1:1"})
    assert out == (
        "# comment with log.dirs=x\nlog.dirs=/tmp/k\nnode.id=1\nlisteners=PLAINTEXT://127.0.0.1:1\n"
    )


def test_no_overrides_is_identity() -> None:
    text = "a=1\nb=2\n"
    assert apply_properties(text, {}) == text
