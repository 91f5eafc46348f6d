"""Clean (anonymised) events: what leaves the raw zone on ``hito.clean.<source>``.

The payload is the raw payload transformed field by field by the privacy policy: kept values,
pseudonyms (``"<key id>:<hex>"``, one per valid key), generalised values (``birth_year`` as
``"1980-1989"``, ``lat``/``lon`` as one ``geohash``), dropped fields absent.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field

from hito.schemas.envelope import DEVICE_ID_PATTERN, SITE_PATTERN, StrictModel
from hito.schemas.registry import Source

CleanValue = str | int | float | list[str] | None


class CleanEvent(StrictModel):
    schema_: str = Field(alias="schema", description="The raw schema it was made from")
    source: Source
    policy: Annotated[str, Field(min_length=1)] = Field(description="Policy version applied")
    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    site: Annotated[str, Field(pattern=SITE_PATTERN)]
    seq: int
    event_time: AwareDatetime = Field(description="Generalised to the policy's time resolution")
    payload: dict[str, CleanValue]
