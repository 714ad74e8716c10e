"""The pieces of unitcost.yaml's models that connectors share: the model base, file locations, the
tenant settings, the retry policy's settings, the restatement window. Connector modules define their
own config models on these (and import nothing from config.py, which assembles them)."""

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_TAG_KEYS = ["tenant_id", "tenant", "TenantId", "user:tenant_id", "user_tenant_id"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSource(Model):
    """Files under the data dir (a relative path) or anywhere (an absolute path)."""

    path: str

    def resolve(self, data_dir: Path) -> Path:
        p = Path(self.path).expanduser()
        return p if p.is_absolute() else data_dir / p


NAMESPACE_TAG_KEYS = ["aws:eks:namespace", "aws_eks_namespace", "k8s:namespace"]


def plain_tag_keys(keys: list[str]) -> list[str]:
    """Tag keys are looked up as JSON paths: non-empty, and no quote or backslash."""
    for k in keys:
        if not k or "'" in k or "\\" in k:
            raise ValueError(f"tag key {k!r} must be non-empty and contain no quote or backslash")
    return keys


def check_namespace_map(mapping: dict[str, str]) -> dict[str, str]:
    """Patterns (keys starting with ^) must compile, and have a group when their value uses {1}."""
    for key, value in mapping.items():
        if key.startswith("^"):
            try:
                groups = re.compile(key).groups
            except re.error as exc:
                raise ValueError(f"namespace_map pattern {key!r} is not a valid regex: {exc}") from None
            if "{1}" in value and groups < 1:
                raise ValueError(f"namespace_map pattern {key!r} has no capture group for {{1}} in {value!r}")
    return mapping


def tenant_of_namespace(mapping: dict[str, str], namespace: str | None) -> str | None:
    """The tenant a namespace belongs to: an exact entry, else the first matching pattern, else None."""
    if namespace is None:
        return None
    if namespace in mapping:
        return mapping[namespace]
    for key, value in mapping.items():
        match = re.fullmatch(key, namespace) if key.startswith("^") else None
        if match:
            return value.replace("{1}", match.group(1)) if match.re.groups else value
    return None


class TenantConfig(Model):
    tag_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_TAG_KEYS), min_length=1)
    normalize: Literal["lower", "none"] = "lower"
    sub_accounts: dict[str, str] = Field(default_factory=dict)
    namespace_map: dict[str, str] = Field(
        default_factory=dict,
        description="Kubernetes namespace -> tenant for line items without a tenant tag (split cost allocation "
        "data); a key starting with ^ is a regex whose value may use {1}, its first group",
    )

    @field_validator("namespace_map")
    @classmethod
    def _namespace_patterns(cls, mapping: dict[str, str]) -> dict[str, str]:
        return check_namespace_map(mapping)

    @field_validator("tag_keys")
    @classmethod
    def _keys_are_plain(cls, keys: list[str]) -> list[str]:
        return plain_tag_keys(keys)


RENAMED_KEYS = {  # old key -> (new key, how to convert); an old key is an error that says what to write
    "max_retry_after_seconds": ("max_wait_seconds", "the same value"),
    "attempts": ("max_retries", "attempts - 1"),
    "max_backoff_seconds": ("max_wait_seconds", "the same value"),
}


class RetrySettings(Model):
    """The one retry policy's settings (unitcost_platform/retries.py), named alike in every section
    that calls a service: a request's timeout, retries after the first try, the doubling backoff and
    the longest wait (a Retry-After longer than that is an error, not a wait)."""

    timeout_seconds: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=10)
    backoff_seconds: float = Field(default=1.0, ge=0)
    max_wait_seconds: float = Field(default=120.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        if isinstance(data, dict):
            for old, (new, how) in RENAMED_KEYS.items():
                if old in data and old not in cls.model_fields:
                    raise ValueError(f"{old} was renamed (one retry policy for every service): write {new}: <{how}> instead")
        return data


class RestatementConfig(Model):
    """Which days are re-pulled (and not yet final) for the APIs: the trailing days and the open month."""

    trailing_days: int = Field(default=3, ge=0)
    month_close_day: int = Field(default=5, ge=1, le=28, description="the previous month is open until this day")
    sensor_interval_seconds: int = Field(default=3600, ge=60)


LABEL_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class UsageMetric(Model):
    """One usage metric a telemetry source feeds: its name in tenant_usage (requests, storage_bytes,
    ...) and, optionally, the service it is usage of."""

    metric: str = Field(description="the usage metric it feeds: requests, storage_bytes, active_sessions, ...")
    service_name: str | None = None
