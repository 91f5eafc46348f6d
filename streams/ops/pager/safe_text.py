"""Page text made safe to print: a page's labels and annotations come from whoever could post
an alert, so they may carry terminal escapes, fake log lines or bidi tricks.

``printable`` escapes every control and invisible formatting character (``\\x1b``,
``\\u202e``) instead of dropping it, so an operator still sees that something odd was sent.
"""

from __future__ import annotations

import unicodedata

# Cc: C0/C1 controls (ESC, CR, LF, BEL, DEL); Cf: invisible formatting (bidi overrides,
# zero-width joiners); Zl/Zp: line and paragraph separators (a new line in a log viewer).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str | None, limit: int = 300) -> str:
    """``text`` with each unsafe character escaped, cut to ``limit`` characters (plus "…").

    The result holds no character a terminal or log viewer would act on, so it can go into a
    log line or a table cell as it is. ``None`` is "".
    """
    if not text:
        return ""
    out = "".join(
        _escape(ch) if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text
    )
    return out if len(out) <= limit else out[:limit] + "…"
