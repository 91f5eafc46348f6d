"""Everything a worker loads once at start-up, validated, and passes explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hito.devices import DeviceRegistry
from hito.pipeline.keystore import KeyStore, KeyStoreError
from hito.pipeline.stages.outcomes import Limits
from hito.pipeline.stages.windows import WindowRules
from hito.schemas.privacy.policy import Policy, load_policy
from hito.schemas.privacy.retention import archive_retention_s
from hito.settings import PSEUDONYM_KEYS, HitoSettings, SettingsError
from hito.settings.sections import PipelineSettings


@dataclass(frozen=True)
class Runtime:
    settings: HitoSettings
    registry: DeviceRegistry
    policy: Policy
    key_store: KeyStore

    @property
    def limits(self) -> Limits:
        return limits_of(self.settings.pipeline)

    @property
    def key_grace_s(self) -> int:
        return key_grace_s(self.settings.pipeline)


def limits_of(pipeline: PipelineSettings) -> Limits:
    """The validation stage's limits, from the settings (stages never see the settings)."""
    return Limits(
        max_event_bytes=pipeline.max_event_bytes,
        max_future_skew_s=pipeline.max_future_skew_s,
        max_event_age_s=float(pipeline.backfill_horizon_s),
    )


def key_grace_s(pipeline: PipelineSettings) -> int:
    """How long after its epoch ends an epoch's pseudonym key lives, and a day of
    ``repeat_crossings`` stays open: as long as the minute windows still count a late event of
    the epoch's last minute. After that nothing of the epoch can be counted anywhere."""
    return pipeline.window_s + pipeline.allowed_lateness_s


def key_store_path(settings: HitoSettings) -> Path:
    """The key store file: the setting, or in the development profile a file of the state
    directory (never a shared, public one: each machine draws its own keys)."""
    chosen = settings.privacy.key_store_file
    if chosen is not None:
        return chosen
    if not settings.development_secrets:
        settings.require(PSEUDONYM_KEYS)
    return settings.state_dir / "privacy" / "pseudonym-keys.dev.json"


def open_key_store(settings: HitoSettings, policy: Policy, now: datetime) -> KeyStore:
    """The key store, checked against the policy, with every closed epoch's key destroyed.

    Development: a missing store, or a purpose without keys, gets fresh random keys.
    Otherwise both are refused: keys of several hosts must come from one provisioning."""
    path = key_store_path(settings)
    grace = key_grace_s(settings.pipeline)
    epochs = {p.name: p.epoch_s for p in policy.linking_purposes if p.epoch_s is not None}
    if settings.development_secrets and not path.exists():
        KeyStore.provision(path, epochs, now, grace)
    store = KeyStore.open(path)
    if settings.development_secrets:
        store.add_missing(epochs, now, grace)
    problems = []
    for purpose, epoch_s in sorted(epochs.items()):
        chain = store.chains.get(purpose)
        if chain is None:
            problems.append(f"no keys for purpose {purpose} (hito policy keys init --purpose)")
        elif chain.epoch_s != epoch_s:
            problems.append(
                f"purpose {purpose}: keys for epochs of {chain.epoch_s} s, the policy's horizon "
                f"is {epoch_s} s (provision new keys for it)"
            )
    if problems:
        raise KeyStoreError(f"{path}: " + "; ".join(problems))
    store.destroy_expired(now, grace)
    return store


def _archive_outlives_the_horizon(pipeline: PipelineSettings, policy: Policy) -> None:
    """A window may be revised until it has been closed for the backfill horizon, from its
    archived counts: the archive must keep it that long (its points are timed at the window's
    start). With a horizon past the archive's retention, a revision found no archived window
    and was counted onto an empty one (the public minute lost its earlier counts), and
    InfluxDB refused the archive's points for good."""
    rules = WindowRules(pipeline.window_s, pipeline.allowed_lateness_s, pipeline.backfill_horizon_s)
    needed = int(rules.revisable_for.total_seconds())
    kept = archive_retention_s(policy)
    if needed > kept:
        raise SettingsError(
            f"HITO_PIPELINE__BACKFILL_HORIZON_S: windows may be revised up to {needed} s after "
            f"they start, but the policy {policy.version} keeps the window archive "
            f"{kept} s (retention_hours.window_archive): shorten the horizon or lengthen that"
        )


def load_runtime(settings: HitoSettings, now: datetime | None = None) -> Runtime:
    """Fails fast: a registry without keys, a policy that misses a field or purpose, a key
    store that does not fit the policy."""
    p, priv = settings.pipeline, settings.privacy
    # Every missing secret named at once (the development profile makes its own key store).
    settings.require(
        *settings.pipeline.registry_settings(),
        *(() if settings.development_secrets else (PSEUDONYM_KEYS,)),
    )
    policy = load_policy(priv.policy_file)
    _archive_outlives_the_horizon(p, policy)
    return Runtime(
        settings=settings,
        registry=DeviceRegistry.load(*p.registry_files()),
        policy=policy,
        key_store=open_key_store(settings, policy, now or datetime.now(UTC)),
    )
