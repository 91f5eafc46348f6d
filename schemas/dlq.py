"""Dead letters: what a rejected event becomes, in two records on two topics.

- :class:`DlqRecord` on ``hito.dlq``, for operators (SPEC.md: the DLQ never repeats raw PII nor
  any input-controlled text): why, where, which device and site, how big — never the bytes.
  ``detail`` names schema fields and error kinds only.
- :class:`DlqOriginal` on ``hito.dlq.originals``, in the raw zone (pipeline and admins only,
  the raw topics' retention): the rejected bytes and key, for ``hito dlq replay``. Above
  ``MAX_ORIGINAL_BYTES`` only a prefix is kept, with the full length and SHA-256, so that
  every record fits the topic's size limit whatever a device sent.

Both carry the rejected record's coordinates (source topic, partition, offset) and a
``rejection_id``, random per rejection, which pair them. The operators' record carries no
digest of the bytes: a SHA-256 of a short input (a document number sent alone by a broken
device, say) is reversed by trying every candidate, so a plain digest would repeat the PII it
hashes (dlq.record/2 had one; :func:`without_plain_digest` drops it when an old record is
read). The originals record, which holds the bytes anyway, keeps their SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Annotated, Any

from pydantic import AwareDatetime, Field

from hito.schemas.envelope import DEVICE_ID_PATTERN, SITE_PATTERN, StrictModel
from hito.schemas.reasons import Reason

# The originals record keeps at most this many bytes of what was rejected (base64 makes it a
# third more): with the envelope around it, far below the default 1 MiB of a Kafka record, and
# four times the largest event the pipeline accepts (64 KiB), so anything that could be valid
# after a fix is kept whole and can be replayed.
MAX_ORIGINAL_BYTES = 256 * 1024

Stage = Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]
# The stage of a batch the worker's fetch refused unread (it unpacks beyond the cap, or not at
# all): its original is empty, so it cannot be replayed; its events are in the raw topic only.
UNREAD_STAGE = "fetch"
DeviceId = Annotated[str | None, Field(pattern=DEVICE_ID_PATTERN)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
RejectionId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
_PAIRS = "Random per rejection: pairs the hito.dlq record with its hito.dlq.originals record"


class DlqRecord(StrictModel):
    """One rejection, as operators see it (``hito.dlq``)."""

    reason: Reason
    stage: Stage
    detail: Annotated[str, Field(max_length=500)]
    retryable: bool = Field(
        default=False, description="True when the same bytes may succeed later (e.g. sink down)"
    )
    device_id: DeviceId = Field(default=None, description="Only a registered device's id")
    site: Annotated[str | None, Field(pattern=SITE_PATTERN)] = Field(
        default=None, description="The registered device's site"
    )
    source_topic: str
    source_partition: int | None = None
    source_offset: int | None = None
    received_at: AwareDatetime
    original_bytes: int = Field(ge=0, description="Size of what was rejected")
    rejection_id: RejectionId | None = Field(
        default=None, description=f"{_PAIRS} (absent on records written before dlq.record/3)"
    )


class DlqOriginal(StrictModel):
    """The bytes of one rejection (``hito.dlq.originals``: raw zone, never for operators)."""

    reason: Reason
    stage: Stage
    device_id: DeviceId = None
    source_topic: str
    source_partition: int | None = None
    source_offset: int | None = None
    received_at: AwareDatetime
    original_bytes: int = Field(ge=0)
    original_sha256: Sha256 = Field(description="SHA-256 of all the rejected bytes")
    rejection_id: RejectionId | None = Field(
        default=None, description=f"{_PAIRS} (absent on records written before dlq.original/2)"
    )
    cut: bool = Field(description=f"Only the first {MAX_ORIGINAL_BYTES} bytes are kept")
    original_b64: str = Field(description="The rejected bytes (or their prefix), base64")
    original_key_b64: str | None = Field(
        default=None, description="The Kafka message key as received, base64 (for replay)"
    )

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)

    @property
    def original_key(self) -> bytes | None:
        return None if self.original_key_b64 is None else base64.b64decode(self.original_key_b64)


def kept_original(raw: bytes) -> tuple[str, bool]:
    """(base64 of what the originals record keeps, whether it was cut)."""
    cut = len(raw) > MAX_ORIGINAL_BYTES
    return base64.b64encode(raw[:MAX_ORIGINAL_BYTES]).decode("ascii"), cut


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def new_rejection_id() -> str:
    """128 random bits: no function of the rejected bytes, so it tells nothing about them."""
    return secrets.token_hex(16)


def without_plain_digest(doc: dict[str, Any]) -> dict[str, Any]:
    """An operators' record as read, without the bytes' SHA-256 that dlq.record/2 carried (it
    stays on ``hito.dlq`` until the topic's retention removes it, and is never shown)."""
    return {k: v for k, v in doc.items() if k != "original_sha256"}
