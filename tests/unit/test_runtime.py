"""Where the pseudonym key store comes from, and what a worker refuses to start with."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hito.pipeline.keystore import KeyStore, KeyStoreError
from hito.runtime import key_store_path, load_runtime, open_key_store
from hito.schemas.privacy.policy import load_policy
from hito.settings import HitoSettings, Profile, SettingsError
from hito.settings.sections import MissingSecret, PrivacySettings

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _settings(tmp_path: Path, profile: Profile, store: Path | None) -> HitoSettings:
    return HitoSettings(
        profile=profile,
        state_dir=tmp_path / "state",
        privacy=PrivacySettings(key_store_file=store),
    )


def test_development_draws_its_own_store_in_the_state_directory(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "development", None)
    path = tmp_path / "state" / "privacy" / "pseudonym-keys.dev.json"
    assert key_store_path(settings) == path
    store = open_key_store(settings, load_policy(), NOW)
    assert path.stat().st_mode & 0o777 == 0o600
    assert store.lookup("repeat_crossings", 20790) is not None
    other = tmp_path / "other"
    again = open_key_store(_settings(other, "development", None), load_policy(), NOW)
    assert again.lookup("repeat_crossings", 20790) != store.lookup("repeat_crossings", 20790)


def test_production_needs_a_provisioned_store(tmp_path: Path) -> None:
    with pytest.raises(MissingSecret, match="HITO_PRIVACY__KEY_STORE_FILE"):
        key_store_path(_settings(tmp_path, "production", None))
    missing = tmp_path / "keys.json"
    with pytest.raises(KeyStoreError, match="hito policy keys init"):
        open_key_store(_settings(tmp_path, "production", missing), load_policy(), NOW)
    assert not missing.exists()  # never made up outside development


def test_a_store_without_the_policys_purpose_or_horizon_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "keys.json"
    KeyStore.provision(store, {"another_purpose": 86400}, NOW, 360)
    settings = _settings(tmp_path, "production", store)
    with pytest.raises(KeyStoreError, match="no keys for purpose repeat_crossings"):
        open_key_store(settings, load_policy(), NOW)
    twelve_hours = tmp_path / "short.json"
    KeyStore.provision(twelve_hours, {"repeat_crossings": 12 * 3600}, NOW, 360)
    with pytest.raises(KeyStoreError, match="the policy's horizon is 86400 s"):
        open_key_store(_settings(tmp_path, "production", twelve_hours), load_policy(), NOW)


def test_a_backfill_horizon_past_the_window_archive_is_refused(tmp_path: Path) -> None:
    """Revisions read a window back from the archive: a horizon longer than the archive
    keeps windows counted revisions onto empty ones (and InfluxDB refused the archive's
    points for good). 7 days fit the shipped policy's 169 h; 8 do not."""
    settings = _settings(tmp_path, "development", None)
    assert load_runtime(settings, NOW).settings.pipeline.backfill_horizon_s == 7 * 86400
    # The bench's six hours of lateness count from within the horizon: accepted.
    lenient = settings.pipeline.model_copy(update={"allowed_lateness_s": 6 * 3600})
    assert load_runtime(settings.model_copy(update={"pipeline": lenient}), NOW)
    longer = settings.pipeline.model_copy(update={"backfill_horizon_s": 8 * 86400})
    with pytest.raises(SettingsError, match="HITO_PIPELINE__BACKFILL_HORIZON_S"):
        load_runtime(settings.model_copy(update={"pipeline": longer}), NOW)
