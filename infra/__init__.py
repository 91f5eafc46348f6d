"""Service configs and build scripts, shipped as package data of ``hito.infra`` (no code).

`hito up` reads them through ``importlib.resources`` (settings.infra_dir), docker-compose.yml
mounts them from the repository: one copy of each. Not shipped: ``dev/`` (the public
development secrets) and ``grafana/schema/`` (a test tool).
"""
