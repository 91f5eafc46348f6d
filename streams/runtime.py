"""Everything a worker loads once at start-up, validated, and passes explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hito.devices import DeviceRegistry
from hito.pipeline.pseudonyms import Keyring
from hito.pipeline.stages.outcomes import Limits
from hito.schemas.privacy.policy import Policy, load_policy
from hito.settings import PSEUDONYM_KEYS, REGISTRY, HitoSettings, PipelineSettings


@dataclass(frozen=True)
class Runtime:
    settings: HitoSettings
    registry: DeviceRegistry
    policy: Policy
    keyring: Keyring

    @property
    def limits(self) -> Limits:
        return limits_of(self.settings.pipeline)


def limits_of(pipeline: PipelineSettings) -> Limits:
    """The validation stage's limits, from the settings (stages never see the settings)."""
    return Limits(
        max_event_bytes=pipeline.max_event_bytes,
        max_future_skew_s=pipeline.max_future_skew_s,
        max_event_age_s=pipeline.max_event_age_s,
    )


def load_runtime(settings: HitoSettings) -> Runtime:
    """Fails fast: a registry without keys, a policy that misses a field, no active key."""
    p, priv = settings.pipeline, settings.privacy
    keys_json = priv.keys_json.get_secret_value() if priv.keys_json else None
    settings.require(*REGISTRY, *(() if keys_json else (PSEUDONYM_KEYS,)))
    return Runtime(
        settings=settings,
        registry=DeviceRegistry.load(*p.registry_files()),
        policy=load_policy(priv.policy_file),
        keyring=Keyring.load(
            path=priv.keys_file,
            json_text=keys_json,
            overlap=timedelta(hours=priv.rotation_overlap_hours),
        ),
    )
