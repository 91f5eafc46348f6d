"""Everything a worker loads once at start-up, validated, and passes explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hito.devices import DeviceRegistry
from hito.pipeline.pseudonyms import Keyring
from hito.schemas.privacy.policy import Policy, load_policy
from hito.settings import HitoSettings


@dataclass(frozen=True)
class Runtime:
    settings: HitoSettings
    registry: DeviceRegistry
    policy: Policy
    keyring: Keyring


def load_runtime(settings: HitoSettings) -> Runtime:
    """Fails fast: a registry without keys, a policy that misses a field, no active key."""
    p, priv = settings.pipeline, settings.privacy
    keys_json = priv.keys_json.get_secret_value() if priv.keys_json else None
    return Runtime(
        settings=settings,
        registry=DeviceRegistry.load(p.devices_file, p.device_keys_file),
        policy=load_policy(priv.policy_file),
        keyring=Keyring.load(
            path=priv.keys_file,
            json_text=keys_json,
            overlap=timedelta(hours=priv.rotation_overlap_hours),
        ),
    )
