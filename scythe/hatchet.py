"""scythe-engine 1.x's shared Hatchet client, ``from scythe.hatchet import hatchet``.

Created when first asked for (never at ``import scythe``), from the standard
``HATCHET_CLIENT_*`` settings: the same client the Hatchet engine uses.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "hatchet":
        from scythe.engines.hatchet import hatchet_client

        return hatchet_client()
    raise AttributeError(f"module 'scythe.hatchet' has no attribute {name!r}")


__all__: list[str] = []  # `hatchet` is created on first access
