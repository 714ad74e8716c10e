"""Resources: the config file and data dir, and the warehouse IO manager of each environment."""

from pathlib import Path

import dagster as dg

from unitcost_platform.config import UnitcostConfig, load_config


class UnitcostResource(dg.ConfigurableResource):
    """Where the validated config (unitcost.yaml) and the local data files live."""

    config_path: str
    data_dir: str

    def load_config(self) -> UnitcostConfig:
        return load_config(Path(self.config_path))

    def data_path(self) -> Path:
        return Path(self.data_dir)
