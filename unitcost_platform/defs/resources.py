"""Resources: the config file and data dir, and each connector's client and secrets."""

import os
from pathlib import Path

import dagster as dg

from unitcost_platform.config import UnitcostConfig, load_config
from unitcost_platform.errors import ConfigError
from unitcost_platform.sources import registry


class UnitcostResource(dg.ConfigurableResource):
    """Where the validated config (unitcost.yaml) and the local data files live."""

    config_path: str
    data_dir: str
    dashboard_dir: str = "data/dashboards"

    def load_config(self) -> UnitcostConfig:
        return load_config(Path(self.config_path))

    def data_path(self) -> Path:
        return Path(self.data_dir)

    def dashboard_path(self) -> Path:
        return Path(self.dashboard_dir)


def secret(env: str) -> dg.EnvVar | None:
    """The one place an environment variable becomes a secret: a `dg.EnvVar`, resolved by Dagster
    when a run or sensor starts (never written to config, logs or metadata). An unset variable gives
    None, so the connector's own error names the variable and the config key that names it."""
    return dg.EnvVar(env) if os.environ.get(env) else None


def source_resources(cfg: UnitcostConfig) -> dict[str, dg.ConfigurableResource]:
    """Every connector's resource, keyed as the connector declares; configured ones get their secrets.

    A configured source whose secret is not in the environment is refused now, not by its first run.
    """
    missing = [
        f"{connector.kind}.{connector.config_key} reads a secret from {env}, which is not set"
        for connector in registry.ALL
        for source in connector.configured(cfg)
        for env in connector.secrets(source)
        if not os.environ.get(env)
    ]
    if missing:
        raise ConfigError(
            "secrets missing where the definitions load (runs read them from the same environment):\n  "
            + "\n  ".join(missing) + "\nset them, or change the *_env key that names them in unitcost.yaml"
        )
    resources: dict[str, dg.ConfigurableResource] = {}
    for connector in registry.ALL:
        if connector.resource_key is None:
            continue
        configured = connector.configured(cfg)
        resources[connector.resource_key] = connector.resource(configured[0] if configured else None, secret)
    return resources


SOURCE_RESOURCE_KEYS = {
    kind: {c.resource_key for c in connectors if c.resource_key} for kind, connectors in registry.CONNECTORS.items()
}
