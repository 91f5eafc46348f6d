"""The event envelope and the three version-1 payloads (SPEC.md, "Event envelope").

Models are strict: unknown fields are rejected (``extra="forbid"``), datetimes must carry an
offset, and numbers are not coerced from strings when validated with ``strict=True`` (which the
validator does). Personal data is marked with ``json_schema_extra={"pii": True}`` so the
published JSON Schema tells device makers which fields never leave the raw zone.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

DEVICE_ID_PATTERN = r"^[a-z0-9-]{3,64}$"
SITE_PATTERN = r"^[a-z0-9-]{2,64}$"
# A signed envelope is RFC 8785 JSON, whose numbers are doubles: integers are exact up to 2**53 - 1
# (I-JSON), so a larger seq could not be signed as written.
MAX_SEQ = 2**53 - 1

PII = {"pii": True}


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]
# A sensor's `value`, whatever its unit (the largest real ones, lux and ppm, stay under 1e6).
# Bounded so that a minute's sums stay finite: two readings of 1.8e308 (DBL_MAX, a common "no
# reading" sentinel) summed to inf, which the window's JSON changelog stored as null and the
# aggregator then failed on, batch after batch, after a restart.
SENSOR_VALUE_LIMIT = 1e9
# The unit of a sensor's `value`: a closed vocabulary, so that no text a device sends in it can
# carry an identifier.
SensorUnit = Literal["degC", "percent", "hPa", "mm", "m", "m/s", "lux", "W/m2", "dB", "ppm", "V"]


class CheckpointCrossingV1(StrictModel):
    """One person crossing a checkpoint lane (``checkpoint.crossing/1``)."""

    direction: Literal["entry", "exit"]
    mode: Literal["pedestrian", "car", "bus", "truck"]
    lane: Annotated[
        str, Field(pattern=r"^L[0-9]{1,2}$", max_length=3, description="Booth lane, L1 to L99")
    ]
    document_type: Literal["passport", "national_id", "tvf", "other"] = Field(
        description="Travel document kind; `tvf` is the Chile-Peru Tarjeta Vecinal Fronteriza"
    )
    document_number: Annotated[str, Field(pattern=r"^[A-Z0-9<]{4,20}$", json_schema_extra=PII)]
    nationality: Annotated[
        str, Field(pattern=r"^[A-Z]{3}$", max_length=3, description="ISO 3166-1 alpha-3")
    ]
    birth_year: Annotated[int, Field(ge=1900, le=2100, json_schema_extra=PII)]
    vehicle_plate: Annotated[
        str | None, Field(pattern=r"^[A-Z0-9-]{2,12}$", json_schema_extra=PII)
    ] = None
    outcome: Literal["admitted", "refused", "secondary"]
    processing_seconds: Annotated[float, Field(ge=0.0, le=86_400.0, allow_inf_nan=False)]


class SensorReadingV1(StrictModel):
    """A fixed sensor's reading (``sensor.reading/1``)."""

    sensor_type: Literal["ground", "infrared", "camera", "environment"]
    lat: Latitude
    lon: Longitude
    detections: Count
    value: Annotated[
        float | None,
        Field(ge=-SENSOR_VALUE_LIMIT, le=SENSOR_VALUE_LIMIT, allow_inf_nan=False),
    ] = None
    unit: SensorUnit | None = None
    battery_pct: Percent


class DroneTelemetryV1(StrictModel):
    """A drone's position fix from its ground station (``drone.telemetry/1``)."""

    flight_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")]
    lat: Latitude
    lon: Longitude
    alt_m: Annotated[float, Field(ge=-500.0, le=10_000.0, allow_inf_nan=False)]
    speed_mps: Annotated[float, Field(ge=0.0, le=150.0, allow_inf_nan=False)]
    heading_deg: Annotated[float, Field(ge=0.0, lt=360.0, allow_inf_nan=False)]
    battery_pct: Percent
    detections: Count
    operator_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$", json_schema_extra=PII)]


class _Envelope(StrictModel):
    event_id: UUID = Field(description="Unique per event")
    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    site: Annotated[str, Field(pattern=SITE_PATTERN)]
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ)] = Field(
        description="Per device, strictly increasing: the basis of dedup and gap detection"
    )
    event_time: AwareDatetime = Field(description="RFC 3339 with offset; when it happened")
    sig: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="HMAC-SHA256 (hex) by the device key over the canonical envelope without sig"
    )


class CheckpointCrossingEvent(_Envelope):
    schema_: Literal["checkpoint.crossing/1"] = Field(alias="schema")
    payload: CheckpointCrossingV1


class SensorReadingEvent(_Envelope):
    schema_: Literal["sensor.reading/1"] = Field(alias="schema")
    payload: SensorReadingV1


class DroneTelemetryEvent(_Envelope):
    schema_: Literal["drone.telemetry/1"] = Field(alias="schema")
    payload: DroneTelemetryV1


Event = CheckpointCrossingEvent | SensorReadingEvent | DroneTelemetryEvent
