"""Scythe's cloud stack as a Pulumi program: bucket, network, ECS workers, Hatchet.

``scythe_infra.stack.build(config)`` creates every resource from a
:class:`scythe_infra.config.StackConfig`; ``infra/__main__.py`` builds it from
``pulumi config``.
"""
