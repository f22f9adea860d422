"""An experiments package written only against scythe-engine 1.x's import paths and API."""
