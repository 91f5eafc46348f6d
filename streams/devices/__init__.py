"""The device registry: which devices may publish, for which site and source, with which key.

Two formats, told apart by their first bytes (``DeviceRegistry.load``):

- the YAML registry (``device_id -> site, kind, status``) with a separate keys file
  (``device_id -> hex key``, a secret), for development and small fleets: the registry can be
  reviewed and shared without its keys;
- the registry file ``hito devices import`` writes from those two or from a CSV (0600: it
  holds the keys), which a worker loads into arrays in a fraction of a second at a million
  devices (``hito.devices.binary``).

Both are checked at start-up: a device without a key, or a key without a device, fails fast.
Workers re-read the registry when its files change (RegistryWatcher), so revoking a device
needs no restart.
"""

from __future__ import annotations

from hito.devices.registry import Device, DeviceRegistry, RegistryError
from hito.devices.watcher import RegistryWatcher

__all__ = ["Device", "DeviceRegistry", "RegistryError", "RegistryWatcher"]
