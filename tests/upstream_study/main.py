"""The worker entry point of scythe-engine 1.x's examples: two lines under the guard."""

from scythe.worker import ScytheWorkerConfig
from upstream_study.experiments import *  # noqa: F403

if __name__ == "__main__":
    worker_config = ScytheWorkerConfig()
    worker_config.start()
