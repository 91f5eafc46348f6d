"""The durable lower bound of a device's next ``seq``.

A ``seq`` is *used* once an event carrying it may have left the device. The pipeline drops an
event whose ``(device_id, seq)`` it has seen as a duplicate, so a re-used number loses a new
event; a skipped number is only a gap (counted as missing). The rule that prevents re-use:

    next seq = max(floor, last seq in the outbox + 1)

- An event is appended to the outbox, and fsync'd, before it can be sent: its ``seq`` is
  durable with it, at no extra cost. A record torn by a power cut was never sent (the sender
  reads only what fsync made durable), so its number is free again.
- Before the outbox deletes records (a segment wholly acknowledged or expired), it raises the
  floor past their numbers (:meth:`SeqFloor.raise_to`, fsync'd), so their numbers stay used
  after they are gone.
"""

from __future__ import annotations

from pathlib import Path

from hito.device.durable import read_json, write_json_atomic


class SeqFloor:
    """Every ``seq`` below :attr:`value` is used; the file is replaced atomically."""

    def __init__(self, path: Path) -> None:
        self._path = path
        stored = read_json(path)
        if stored is None:
            self.value = 0
        elif isinstance(stored, dict) and isinstance(stored.get("next_seq"), int):
            self.value = int(stored["next_seq"])
        else:
            raise ValueError(f"{path} is not a seq floor file")

    def raise_to(self, value: int) -> None:
        """Durably: no seq below ``value`` is ever allocated again (a lower value is a no-op)."""
        if value <= self.value:
            return
        write_json_atomic(self._path, {"next_seq": value})
        self.value = value
