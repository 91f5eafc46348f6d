"""Clean (anonymised) events: what leaves the raw zone on ``hito.clean.<source>``.

The payload holds the fields some purpose of the privacy policy needs, transformed field by
field: kept values, generalised values (``nationality`` as a listed group or ``"other"``,
``lat``/``lon`` as one ``geohash``); everything else is gone. Pseudonyms are apart, by the
purpose that needs them: ``{"repeat_crossings": {"document_number": "e20790:<hex>"}}`` links
records of one person within that purpose and one epoch of its horizon, and nothing more.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field

from hito.schemas.envelope import DEVICE_ID_PATTERN, SITE_PATTERN, StrictModel
from hito.schemas.registry import Source

CleanValue = str | int | float | None
PSEUDONYM_PATTERN = r"^e[0-9]{1,9}:[0-9a-f]{32}$"
Pseudonym = Annotated[str, Field(pattern=PSEUDONYM_PATTERN)]


class CleanEvent(StrictModel):
    schema_: str = Field(alias="schema", description="The raw schema it was made from")
    source: Source
    policy: Annotated[str, Field(min_length=1)] = Field(description="Policy version applied")
    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    site: Annotated[str, Field(pattern=SITE_PATTERN)]
    seq: int
    event_time: AwareDatetime = Field(description="Generalised to the policy's time resolution")
    payload: dict[str, CleanValue]
    pseudonyms: dict[str, dict[str, Pseudonym]] = Field(
        default_factory=dict,
        description="purpose -> field -> pseudonym (per purpose and epoch of its horizon)",
    )
