"""The secrets of the public development files (infra/dev/: the Kafka users' passwords and the
device keys), as SHA-256 digests: what a production secret file must not hold.

The files themselves are not shipped (the wheel and the image leave infra/dev/ out), so a check
that read them found nothing to compare with in a deployment; a copy of them there
(``cp infra/dev/kafka-users.dev.yaml /etc/hito/``) passed. Digests, not the values: the values
are public, but a shipped list of them would be one more place to copy from.
tests/unit/settings/test_public_secrets.py keeps this list equal to the files.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

# A password of the development users file, or a 64-hex key (the device keys).
SECRET_TEXT = re.compile(r"hito-DEV-ONLY-[A-Za-z0-9-]+|\b[0-9a-f]{64}\b")
MARKER = "hito-DEV-ONLY-"  # every development password starts with it
# A secret file is small (a users file, a small fleet's keys); a larger one is not read here.
MAX_READ_BYTES = 8 * 1024 * 1024

DIGESTS: frozenset[str] = frozenset(
    {
        "0a64c6f39165af998d3dd0737a0a78c63627c0d750ef5ef5a830a7d6a9ac86a8",
        "1d0756f1f80411cde0365bd323ea5483b23f49185e4f33465325993dc3e2ed65",
        "23b4ed1a021de6305129cd36ea45d03de6c2e673dd08d53c737c0bb470a16002",
        "279808f9f9b6663ca3b9be90fd9a613abe9262b8b6502e54eb2e3a464c1f1c09",
        "331b279a1f8bb0326016c28b725023975dcb21775c348eb4ffec30b2d6507ce7",
        "3c27231c693e401a6f0f8a0e12fc51981ea679e60eea5b759185abce173bf03c",
        "409c71a841b4af6220538f1ec70aa28f0a0292fd042390e15f6a3ed28f33ae4c",
        "410dae750f95bf641ae2c176ed5d2895beb0cf08453da2df1a16fae7b2e08be6",
        "44849c3b038f6e63a98a58e946024fceb74a3a40ff7f7baf89326466e8b6a7ea",
        "563f14b6e1b6e43dd91eec9457be9d8e2a333bab81a83ca147433291dfa83c49",
        "609ab5e2a31292284ff0bd8cf37b0a5021cb91893dee8cd573c92b34848b5863",
        "60ce525d38a4e0090eeb5355d5aaea3a02da3c99db5bd2a10d0f0751b7ac7c1b",
        "84538dd10f014812ed4416210b28aa31eb429bd5efbfc4f9abc54f450a19948e",
        "94ce9cbfec168bdce068c77aa56afeca939ab43b9701b7d3c4634f156e2f7205",
        "9778edf2ff36123f0ac01e3abff0bdbdb4229e40922fe688f877296697535843",
        "98136b2f21b547c1761027c282b003f7dfb231902d40fcb7d5c3287fe3c9a0d9",
        "a77497d335c93fc0f57be5b2b1a28b14f40e5c243636d6f4423040b4e055b73b",
        "b7d5ba228b1b91d49ac99cd370ad3ac72b24ddbfc07211ddd59d2cfe7d962cfc",
        "d649795b538ce3109c8c6f8c29acf47d4ddcfb0342346e2f5b5c9900ae29f63e",
        "f0861c8402dd96a0afba0b6208fcc7b4b1124eab8e54c83ae595219f653faa72",
        "fad3ca52550bd70b42349dd166e2a2689f4b972409d07abe6450081e986dedd6",
    }
)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def holds_public_secret(path: Path) -> bool:
    """Whether the regular file ``path`` holds a development password or key. Not a regular
    file (a FIFO, /dev/fd/N: reading would consume it), too large or unreadable: False, and
    the command that reads it says what is wrong."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_READ_BYTES:
            return False
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return any(
        found.startswith(MARKER) or digest(found) in DIGESTS for found in SECRET_TEXT.findall(text)
    )
