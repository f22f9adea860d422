"""The Scythe stack: `pulumi up` in this directory (docs/deployment.md)."""

from scythe_infra.config import load_config
from scythe_infra.stack import build, export

export(build(load_config()))
