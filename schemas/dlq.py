"""The DLQ record: what a rejected event becomes on ``hito.dlq``.

``detail`` is for humans and never repeats the event's values (only field paths and error kinds),
so it cannot leak personal data; the original bytes stay in ``original_b64`` inside the raw zone.
"""

from __future__ import annotations

import base64
from typing import Annotated

from pydantic import AwareDatetime, Field

from hito.schemas.envelope import DEVICE_ID_PATTERN, StrictModel
from hito.schemas.reasons import Reason


class DlqRecord(StrictModel):
    reason: Reason
    stage: Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]
    detail: Annotated[str, Field(max_length=500)]
    retryable: bool = Field(
        default=False, description="True when the same bytes may succeed later (e.g. sink down)"
    )
    device_id: Annotated[str | None, Field(pattern=DEVICE_ID_PATTERN)] = None
    source_topic: str
    source_partition: int | None = None
    source_offset: int | None = None
    received_at: AwareDatetime
    original_b64: str = Field(description="The rejected bytes exactly as received, base64")
    original_key_b64: str | None = Field(
        default=None, description="The Kafka message key as received, base64 (for replay)"
    )

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)

    @property
    def original_key(self) -> bytes | None:
        return None if self.original_key_b64 is None else base64.b64decode(self.original_key_b64)

    @staticmethod
    def encode_original(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")
