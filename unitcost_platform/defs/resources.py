"""Resources: the config file and data dir, and the warehouse IO manager of each environment."""

from pathlib import Path

import boto3
import dagster as dg
from dagster_aws.utils import ResourceWithBoto3Configuration, construct_boto_client_retry_config

from unitcost_platform.config import UnitcostConfig, load_config


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


class CostExplorerResource(ResourceWithBoto3Configuration):
    """A boto3 Cost Explorer client (credentials from the standard AWS chain, or this config).

    botocore's own retries are off: throttling is retried by the connector, a bounded number of
    times, so one run never multiplies billed requests unseen.
    """

    def get_client(self):
        session = boto3.session.Session(profile_name=self.profile_name)
        return session.client(
            "ce",
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            use_ssl=self.use_ssl,
            verify=self.verify,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            config=construct_boto_client_retry_config(1),
        )
