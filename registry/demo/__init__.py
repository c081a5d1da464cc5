"""Demo data. Apps above the registry add their own demo records through ``register_seeder``
(called from their ``AppConfig.ready``), so that the registry never imports them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Seeder = Callable[[dict[str, Any]], None]
_seeders: list[Seeder] = []


def register_seeder(seeder: Seeder) -> Seeder:
    """Run ``seeder(organisations_by_key)`` inside ``seed_demo``'s transaction. Seeders must
    be idempotent."""
    if seeder not in _seeders:
        _seeders.append(seeder)
    return seeder


def demo_seeders() -> list[Seeder]:
    return list(_seeders)
