"""A realistic multi-tenant SaaS, written as the files the embedded default reads.

Deterministic for a seed. About 1,000 customers over 120 days in five tiers with MRR; AWS services
tagged by tenant; a shared NAT gateway, load balancers, a shared Aurora cluster and CloudWatch left
untagged on purpose; Lambda functions and (late in the period) DynamoDB tables that miss the tenant
tag by mistake; one tenant at about 40x the median usage; free and trial tenants using 30-40% of the
requests, growing after a free-tier launch; and customers built to cross the alert thresholds:
one over 25% cost-to-MRR whose team ships a fix that ends the incident before the last day, one
between 20% and 25%, one whose cost rises over 15% in a week on flat revenue, one whose cost per
request triples on day 95 (a shipped regression: an ANOMALY) and one whose cost grows about 1.2% a
day towards P2 (a FORECAST before it gets there).
ElastiCache clusters carry a `product: search` tag, and their `searches` fall 30% ten days before the
end (a client-side cache ships) while the clusters are not resized: a product whose cost outgrows
its usage.

Kubernetes: a shared EKS cluster billed in CUR 2.0 form with split cost allocation data (tenant
namespaces, shared ingress-nginx and kube-system pods, the nodes' unused capacity apart) and a batch
cluster whose node cost OpenCost's per-namespace estimates split.

Files: `billing/aws-focus-YYYY-MM.parquet` (FOCUS 1.0, Tags as a Parquet map), `billing/
aws-network-hourly-YYYY-MM.csv` (hourly NAT gateway and load balancer rows, Tags as JSON strings,
the literal NULL), `billing/aws-cur2-eks-YYYY-MM.parquet` (CUR 2.0 with `split_line_item_*`
columns: both clusters' nodes and the EKS pods), `opencost/allocation-YYYY-MM.json` (recorded
OpenCost `/allocation?aggregate=namespace&step=1d` responses of the batch cluster),
`usage/usage-YYYY-MM.parquet` (long format) and `customers.csv` (with valid_from/valid_to history:
onboarding, trial conversions, churn).
"""

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from unitcost_platform.errors import ConfigError
from unitcost_platform.settings import DEMO_DAYS, DEMO_START_DATE

TIERS = ["enterprise", "mid-market", "smb", "trial", "free"]
REGRESSION_DAY = 95
TOWARDS_P2_GROWTH = 1.012  # per day
TIER_WEIGHTS = [0.03, 0.12, 0.45, 0.15, 0.25]
# Requests per day per dollar of MRR: enterprise contracts pay more per unit of usage.
REQUESTS_PER_MRR = {"enterprise": 25.0, "mid-market": 45.0, "smb": 70.0}
NON_PAYING_REQUESTS = {"trial": 120_000.0, "free": 100_000.0}
FREE_LAUNCH_DAY = 60  # free-tier feature launch: free usage ramps up after this day
FREE_GROWTH = 1.7
FREE_RAMP_DAYS = 50
DYNAMO_TAG_BREAK_DAY = 100  # a deploy stops propagating tenant_id to some DynamoDB tables
P1_RAMP_DAY = 70  # Bluefin Labs' compute doubles (a feature that scans every row per request) ...
P1_FIX_DAY = 100  # ... and its team ships the fix
# The search product (ElastiCache clusters tagged product=search) serves `searches`, 0.3 per request;
# this many days before the end a client-side cache ships and searches fall by SEARCH_CACHE_DROP,
# but the clusters are not resized: search's cost outgrows its usage (product_cost flags it).
SEARCH_CACHE_DAYS_BEFORE_END = 10
SEARCH_CACHE_DROP = 0.3
SEARCHES_PER_REQUEST = 0.3

ACCOUNT = ("111122223333", "Northwind SaaS (payer)")
SUB_ACCOUNTS = [("210987654321", "prod-us"), ("310987654321", "prod-eu"), ("410987654321", "shared-services")]
REGIONS = {"210987654321": ("us-east-1", "US East (N. Virginia)"), "310987654321": ("eu-west-1", "Europe (Ireland)"),
           "410987654321": ("us-east-1", "US East (N. Virginia)")}  # fmt: skip

ADJECTIVES = ["amber", "arctic", "atlas", "azure", "bright", "brisk", "cedar", "civic", "clear", "cobalt", "coral", "crisp", "delta", "ember", "fable", "fjord", "gentle", "golden", "granite", "harbor", "hazel", "indigo", "iron", "juniper", "keen", "lumen", "maple", "meadow", "mosaic", "noble", "north", "oak", "onyx", "orbit", "pacific", "pine", "prairie", "quartz", "quick", "rapid", "raven", "river", "sable", "sage", "sierra", "silver", "solar", "spruce", "stellar", "summit", "swift", "tidal", "true", "umber", "velvet", "vivid", "willow", "zephyr"]
NOUNS = ["analytics", "apps", "bakery", "bank", "labs", "logistics", "media", "health", "retail", "robotics", "studio", "systems", "software", "foods", "energy", "games", "travel", "finance", "motors", "learning", "insights", "works", "cloud", "data", "dynamics", "partners", "networks", "security", "payments", "markets"]

SERVICES = {
    # name: (category, sku prefix, resource type)
    "Amazon Elastic Compute Cloud": ("Compute", "EC2", "Instance"),
    "AWS Lambda": ("Compute", "LMB", "Function"),
    "Amazon Simple Storage Service": ("Storage", "S3", "Bucket"),
    "Amazon DynamoDB": ("Databases", "DDB", "Table"),
    "Amazon ElastiCache": ("Databases", "ECH", "Cluster"),
    "Amazon Relational Database Service": ("Databases", "RDS", "DBCluster"),
    "Amazon CloudWatch": ("Management and Governance", "CW", "Metric"),
    "AWS Support (Business)": ("Other", "SUP", None),
    "Amazon Virtual Private Cloud": ("Networking", "VPC", "NatGateway"),
    "Elastic Load Balancing": ("Networking", "ELB", "LoadBalancer"),
}


@dataclass(frozen=True)
class DemoSpec:
    """What to generate; the defaults are the bundled demo."""

    customers: int = 1000
    days: int = DEMO_DAYS
    start: dt.date = DEMO_START_DATE
    seed: int = 7


@dataclass
class DemoSummary:
    out_dir: Path
    start: dt.date
    end: dt.date
    customers: int
    tenants: int
    billing_rows: int
    usage_rows: int
    files: list[Path] = field(default_factory=list)
    highlights: dict[str, str] = field(default_factory=dict)


@dataclass
class _Population:
    customers: pl.DataFrame  # customer versions, as written to customers.csv
    tenants: pl.DataFrame  # one row per tenant with its traits


def _names(rng: np.random.Generator, n: int) -> list[str]:
    seen: set[str] = set()
    names = []
    while len(names) < n:
        name = f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS).title()}"
        if name in seen:
            name = f"{name} {len(names)}"
        seen.add(name)
        names.append(name)
    return names


def _population(spec: DemoSpec, rng: np.random.Generator) -> _Population:
    n = spec.customers
    tiers = rng.choice(TIERS, size=n, p=TIER_WEIGHTS)
    mrr = np.zeros(n)
    mrr[tiers == "enterprise"] = np.round(rng.uniform(15_000, 60_000, (tiers == "enterprise").sum()), -2)
    mrr[tiers == "mid-market"] = np.round(rng.uniform(2_500, 12_000, (tiers == "mid-market").sum()), -1)
    mrr[tiers == "smb"] = np.round(rng.uniform(150, 1_500, (tiers == "smb").sum()), -1)
    names = _names(rng, n)
    ids = [f"C{i + 1:05d}" for i in range(n)]
    last = spec.days - 1
    onboard = np.where(rng.random(n) < 0.12, _event_days(rng, 1, last - 20, n, none=0), 0)
    churn = np.where((rng.random(n) < 0.03) & (tiers != "enterprise"), _event_days(rng, 30, last - 5, n), -1)
    churn = np.where(churn <= onboard + 5, -1, churn)
    convert = np.where((tiers == "trial") & (rng.random(n) < 0.25), _event_days(rng, 10, last - 10, n), -1)
    convert = np.where((convert <= onboard) | ((churn >= 0) & (convert >= churn)), -1, convert)
    usage_factor = np.exp(rng.normal(0, 0.45, n))

    designated = _designate(tiers, onboard, churn, convert)
    for role, idx in designated.items():
        onboard[idx], churn[idx], convert[idx] = 0, -1, -1
        names[idx] = {"p1": "Bluefin Labs", "p2": "Quarry Systems", "trend": "Lantern Retail",
                      "whale": "Meridian Health", "regression": "Kestrel Freight",
                      "towards_p2": "Juniper Robotics"}[role]  # fmt: skip
    mrr[designated["p1"]] = 900.0
    mrr[designated["p2"]] = 5_000.0
    mrr[designated["trend"]] = 40_000.0
    mrr[designated["whale"]] = 58_000.0
    mrr[designated["regression"]] = 6_000.0
    mrr[designated["towards_p2"]] = 14_000.0

    def day(i: int) -> dt.date:
        return spec.start + dt.timedelta(days=int(i))

    rows = []
    for i in range(n):
        base = {"customer_id": ids[i], "customer_name": names[i], "segment": _segment(tiers[i], rng)}
        start = day(onboard[i]) if onboard[i] > 0 else None
        if convert[i] >= 0:
            converted_mrr = float(np.round(rng.uniform(150, 900), -1))
            rows.append({**base, "tier": "trial", "mrr": 0.0, "status": "active", "valid_from": start, "valid_to": day(convert[i])})
            rows.append({**base, "tier": "smb", "mrr": converted_mrr, "status": "active", "valid_from": day(convert[i]), "valid_to": None})
        elif churn[i] >= 0:
            rows.append({**base, "tier": tiers[i], "mrr": float(mrr[i]), "status": "active", "valid_from": start, "valid_to": day(churn[i])})
            rows.append({**base, "tier": tiers[i], "mrr": 0.0, "status": "churned", "valid_from": day(churn[i]), "valid_to": None})
        else:
            rows.append({**base, "tier": tiers[i], "mrr": float(mrr[i]), "status": "active", "valid_from": start, "valid_to": None})
    versions = pl.DataFrame(rows, schema={
        "customer_id": pl.String, "customer_name": pl.String, "segment": pl.String, "tier": pl.String,
        "mrr": pl.Float64, "status": pl.String, "valid_from": pl.Date, "valid_to": pl.Date,
    })  # fmt: skip

    tenant_rows = []
    for i in range(n):
        slug = names[i].lower().replace(" ", "-")
        count = 2 if tiers[i] == "enterprise" and i % 3 == 0 and i not in designated.values() else 1
        for k in range(count):
            tenant_rows.append({
                "tenant_id": f"{slug}-{i + 1:04d}" + ("-eu" if k else ""),
                "customer_id": ids[i],
                "tier": tiers[i],
                "mrr": float(mrr[i]),
                "share": 1.0 / count,
                "onboard": int(onboard[i]),
                "churn": int(churn[i]),
                "convert": int(convert[i]),
                "usage_factor": float(usage_factor[i]),
                "sub_account": SUB_ACCOUNTS[1][0] if k else SUB_ACCOUNTS[0][0],
                "role": next((r for r, idx in designated.items() if idx == i), None),
            })  # fmt: skip
    tenants = pl.DataFrame(tenant_rows)
    customers = versions.join(tenants.select("customer_id", "tenant_id"), on="customer_id").select(
        "customer_id", "tenant_id", "customer_name", "tier", "mrr", "status", "segment", "valid_from", "valid_to"
    )
    return _Population(customers=customers.sort("customer_id", "tenant_id", "valid_from", nulls_last=False), tenants=tenants)


def _segment(tier: str, rng: np.random.Generator) -> str:
    if tier in ("trial", "free"):
        return "self-serve"
    return str(rng.choice(["north-america", "europe", "apac"], p=[0.55, 0.3, 0.15]))


def _event_days(rng: np.random.Generator, low: int, high: int, n: int, none: int = -1) -> np.ndarray:
    """A day in [low, high) per customer for an event (onboarding, churn, conversion); a demo too
    short for the event's window has none (`none`)."""
    if high <= low:
        return np.full(n, none)
    return rng.integers(low, high, n)


def _designate(tiers: np.ndarray, onboard: np.ndarray, churn: np.ndarray, convert: np.ndarray) -> dict[str, int]:
    """Pick stable customers for the alert stories (deterministic: the first of each tier)."""
    stable = (onboard == 0) & (churn < 0) & (convert < 0)
    smb = np.flatnonzero(stable & (tiers == "smb"))
    mid = np.flatnonzero(stable & (tiers == "mid-market"))
    ent = np.flatnonzero(stable & (tiers == "enterprise"))
    if smb.size < 1 or mid.size < 3 or ent.size < 2:
        raise ConfigError(
            f"{len(tiers)} customers are too few for the demo's story (it needs an SMB, three mid-market and two "
            "enterprise customers present the whole period); use --customers 100 or more"
        )
    return {"p1": int(smb[0]), "p2": int(mid[0]), "trend": int(ent[0]), "whale": int(ent[1]),
            "regression": int(mid[1]), "towards_p2": int(mid[2])}  # fmt: skip


def _tenant_days(spec: DemoSpec, tenants: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Usage of each tenant on each day it is live: requests, storage and sessions."""
    days = pl.DataFrame({"d": np.arange(spec.days)})
    grid = tenants.join(days, how="cross").filter(
        (pl.col("d") >= pl.col("onboard")) & ((pl.col("churn") < 0) | (pl.col("d") < pl.col("churn")))
    )
    noise = np.exp(rng.normal(0, 0.06, grid.height))
    weekday = (pl.col("d") + spec.start.weekday()) % 7
    seasonal = pl.when(weekday >= 5).then(0.78).otherwise(1.0)
    paying_base = pl.col("mrr") * pl.col("tier").replace_strict(REQUESTS_PER_MRR, default=0.0)
    free_ramp = 1.0 + (FREE_GROWTH - 1.0) * ((pl.col("d") - FREE_LAUNCH_DAY).clip(0, FREE_RAMP_DAYS) / FREE_RAMP_DAYS)
    is_trial = (pl.col("tier") == "trial") & ((pl.col("convert") < 0) | (pl.col("d") < pl.col("convert")))
    converted = (pl.col("convert") >= 0) & (pl.col("d") >= pl.col("convert"))
    base = (
        pl.when(converted).then(45_000.0)
        .when(is_trial).then(NON_PAYING_REQUESTS["trial"] * free_ramp)
        .when(pl.col("tier") == "free").then(NON_PAYING_REQUESTS["free"] * free_ramp)
        .otherwise(paying_base)
    )  # fmt: skip
    frame = grid.with_columns(pl.Series("_noise", noise), seasonal.alias("_seasonal")).with_columns(
        (base * pl.col("usage_factor") * pl.col("share") * pl.col("_seasonal") * pl.col("_noise")).alias("requests"),
        (pl.when(pl.col("tier").is_in(["trial", "free"]) & ~converted).then(0.4).otherwise(1.0)).alias("_data"),
        converted.alias("converted"),
    )
    whale_target = 40.0 * float(frame.filter(pl.col("d") == 0)["requests"].median())
    frame = frame.with_columns(
        pl.when(pl.col("role") == "whale")
        .then(whale_target * pl.col("_seasonal") * (1 + (pl.col("_noise") - 1) * 0.3))
        .when(pl.col("role").is_in(["p1", "p2"]))
        .then(pl.col("requests") * 0.15)
        .otherwise(pl.col("requests"))
        .alias("requests"),
    )
    # Storage grows with the tenant's age and traffic: GB kept by paying tenants, small caps on free.
    age = (pl.col("d") - pl.col("onboard") + 30).cast(pl.Float64)
    paying_gb = pl.max_horizontal(pl.col("mrr"), 300.0) * 0.05 * pl.col("share")
    storage_gb = pl.when(pl.col("_data") < 1).then(1.5).otherwise(paying_gb) * (age / (age + 60)) * 1.5 * pl.col("usage_factor")
    return frame.with_columns(
        (storage_gb * 1e9).round(0).alias("storage_bytes"),
        (pl.col("requests") / 180.0).round(0).alias("active_sessions"),
        pl.col("requests").round(0),
    )


def _date_of(spec: DemoSpec) -> Callable[[pl.Expr], pl.Expr]:
    return lambda d: (pl.lit(spec.start) + pl.duration(days=d)).cast(pl.Date)


def _tenant_line_items(spec: DemoSpec, td: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Daily, tenant-tagged line items of the tenant-owned resources."""
    date = _date_of(spec)
    req = pl.col("requests")
    # Bluefin Labs' compute doubles on day 70 (P2, then P1 from about day 85); its team ships a fix on
    # day 100 that cuts it to a third, and the 30-day run rate is back under P2 two weeks later.
    ramp_p1 = pl.when(pl.col("d") >= P1_FIX_DAY).then(0.3).when(pl.col("d") >= P1_RAMP_DAY).then(2.1).otherwise(1.0)
    ramp_trend = 1.0 + 0.65 * ((pl.col("d") - (spec.days - 9)).clip(0, 6) / 6.0)
    # The regression: from REGRESSION_DAY, compute per request costs three times as much (requests flat).
    regression = pl.when(pl.col("d") >= REGRESSION_DAY).then(3.0).otherwise(1.0)
    paid = pl.col("tier").is_in(["enterprise", "mid-market", "smb"]) | pl.col("converted")
    ec2_base = pl.col("tier").replace_strict({"enterprise": 40.0, "mid-market": 3.0, "smb": 0.2}, default=0.0)
    ec2 = ec2_base * pl.col("share") + req * 0.000004
    ec2 = (
        pl.when(pl.col("role") == "p1").then(4.4 * ramp_p1)
        .when(pl.col("role") == "p2").then(29.0)
        .when(pl.col("role") == "trend").then(ec2 * ramp_trend * 2.2)
        .when(pl.col("role") == "regression").then(ec2 * regression)
        .when(pl.col("role") == "towards_p2").then(20.0 * TOWARDS_P2_GROWTH ** pl.col("d").cast(pl.Float64))
        .otherwise(ec2)
    )  # fmt: skip
    lambda_cost = req * 0.0000021
    s3 = pl.col("storage_bytes") / 1e9 * 0.023 / 30 * 3.0
    # Paid plans get their own provisioned tables (and backups); free tenants share a pooled table.
    dynamo_base = pl.when(paid).then(pl.col("tier").replace_strict({"enterprise": 6.0, "mid-market": 2.0}, default=0.45)).otherwise(0.0)
    dynamo = (dynamo_base * pl.col("share") + req * 0.0000012) * pl.when(pl.col("role") == "trend").then(ramp_trend).otherwise(1.0)
    cache = pl.col("tier").replace_strict({"enterprise": 16.0, "mid-market": 3.1}, default=0.0) * pl.col("share")
    services = [
        ("Amazon Elastic Compute Cloud", ec2, "Hrs", req / 40_000 + 1),
        ("AWS Lambda", lambda_cost, "Requests", req),
        ("Amazon Simple Storage Service", s3, "GB-Mo", pl.col("storage_bytes") / 1e9 / 30),
        ("Amazon DynamoDB", dynamo, "WriteRequestUnits", req * 0.4),
        ("Amazon ElastiCache", cache, "NodeUsage", pl.lit(24.0)),
    ]
    parts = []
    for service, cost, unit, qty in services:
        category, sku, rtype = SERVICES[service]
        parts.append(td.select(
            "d", "tenant_id", "sub_account", "tier", "role",
            pl.lit(service).alias("ServiceName"), pl.lit(category).alias("ServiceCategory"),
            pl.lit(sku).alias("_sku"), pl.lit(rtype).alias("ResourceType"),
            cost.alias("_cost"), pl.lit(unit).alias("PricingUnit"), qty.cast(pl.Float64).alias("PricingQuantity"),
        ).filter(pl.col("_cost") > 0))  # fmt: skip
    items = pl.concat(parts)
    n = items.height
    # Mistakes: a third of tenants' Lambda functions miss the tenant tag; after a deploy, half the
    # DynamoDB tables do too.
    h = items["tenant_id"].hash(seed=3) % 100
    untagged = (
        ((pl.col("ServiceName") == "AWS Lambda") & (pl.Series(h) < 40))
        | ((pl.col("ServiceName") == "Amazon Elastic Compute Cloud") & (pl.Series(h) % 7 == 0) & (pl.col("role").is_null()))
        | ((pl.col("ServiceName") == "Amazon DynamoDB") & (pl.col("d") >= DYNAMO_TAG_BREAK_DAY) & (pl.Series(h) % 2 == 0))
    )
    committed = (pl.col("ServiceName") == "Amazon Elastic Compute Cloud") & pl.col("tier").is_in(["enterprise", "mid-market"])
    noise = pl.Series(np.exp(rng.normal(0, 0.03, n)))
    items = items.with_columns(
        (pl.col("_cost") * noise).alias("_cost"),
        untagged.alias("_untagged"),
        committed.alias("_committed"),
    )
    region = pl.col("sub_account").replace_strict({k: v[0] for k, v in REGIONS.items()})
    resource = pl.concat_str([
        pl.lit("arn:aws:"), pl.col("_sku").str.to_lowercase(), pl.lit(":"), region, pl.lit(":"),
        pl.col("sub_account"), pl.lit(":"), pl.col("ResourceType").str.to_lowercase(), pl.lit("/"), pl.col("tenant_id"),
    ])  # fmt: skip
    tags_tenant = pl.struct(pl.lit("tenant_id").alias("key"), pl.col("tenant_id").alias("value"))
    tags_env = pl.struct(pl.lit("environment").alias("key"), pl.lit("prod").alias("value"))
    tags_product = pl.struct(pl.lit("product").alias("key"), pl.lit("search").alias("value"))
    tags = (
        pl.when(pl.col("_untagged")).then(pl.concat_list([tags_env]))
        .when(pl.col("ServiceName") == "Amazon ElastiCache").then(pl.concat_list([tags_tenant, tags_env, tags_product]))
        .otherwise(pl.concat_list([tags_tenant, tags_env]))
    )  # fmt: skip
    return items.select(
        date(pl.col("d")).alias("_day"),
        pl.lit(0).alias("_hour"), pl.lit(24).alias("_hours"),
        "ServiceName", "ServiceCategory", "ResourceType", "PricingUnit", "PricingQuantity",
        pl.col("sub_account").alias("SubAccountId"),
        resource.alias("ResourceId"),
        pl.col("tenant_id").alias("ResourceName"),
        pl.concat_str([pl.col("_sku"), pl.lit("-USAGE")]).alias("SkuId"),
        pl.when(pl.col("_committed")).then(0.0).otherwise(pl.col("_cost")).alias("BilledCost"),
        pl.col("_cost").alias("EffectiveCost"),
        (pl.col("_cost") / pl.when(pl.col("_committed")).then(0.72).otherwise(1.0)).alias("ListCost"),
        pl.lit("Usage").alias("ChargeCategory"),
        pl.lit("Usage-Based").alias("ChargeFrequency"),
        pl.when(pl.col("_committed")).then(pl.lit("Committed")).otherwise(pl.lit("Standard")).alias("PricingCategory"),
        pl.when(pl.col("_committed")).then(pl.lit("arn:aws:savingsplans::111122223333:savingsplan/sp-compute-2026")).alias("CommitmentDiscountId"),
        pl.when(pl.col("_committed")).then(pl.lit("Spend")).alias("CommitmentDiscountCategory"),
        pl.when(pl.col("_committed")).then(pl.lit("Used")).alias("CommitmentDiscountStatus"),
        tags.alias("Tags"),
    )  # fmt: skip


def _shared_line_items(spec: DemoSpec, td: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Untagged shared infrastructure: (daily Parquet rows, hourly network rows for the CSV)."""
    date = _date_of(spec)
    daily_requests = td.group_by("d").agg(pl.col("requests").sum(), pl.col("storage_bytes").sum()).sort("d")
    shared_acct = SUB_ACCOUNTS[2][0]
    hours = pl.DataFrame({"_hour": np.arange(24)})
    nat = daily_requests.join(pl.DataFrame({"_gw": ["nat-0a1b2c3d", "nat-0e4f5a6b", "nat-09c8d7e6"]}), how="cross").join(hours, how="cross")
    hourly_shape = 0.6 + 0.8 * np.sin(np.pi * np.arange(24) / 24)
    shape = pl.col("_hour").replace_strict(dict(enumerate(hourly_shape.tolist())), return_dtype=pl.Float64)
    nat = nat.select(
        date(pl.col("d")).alias("_day"), "_hour", pl.lit(1).alias("_hours"),
        pl.lit("Amazon Virtual Private Cloud").alias("ServiceName"), pl.lit("Networking").alias("ServiceCategory"),
        pl.lit("NatGateway").alias("ResourceType"), pl.lit("GB").alias("PricingUnit"),
        (pl.col("requests") * 0.00002 / 3 / 24 * shape).alias("PricingQuantity"),
        pl.lit(shared_acct).alias("SubAccountId"),
        pl.concat_str([pl.lit(f"arn:aws:ec2:us-east-1:{shared_acct}:natgateway/"), pl.col("_gw")]).alias("ResourceId"),
        pl.col("_gw").alias("ResourceName"),
        pl.lit("VPC-NatGateway-Bytes").alias("SkuId"),
        (0.045 + pl.col("requests") * 0.00000105 / 3 / 24 * shape).alias("EffectiveCost"),
    )
    alb = daily_requests.join(pl.DataFrame({"_lb": ["app/edge-public/4f2a9c", "app/api-internal/8b1d3e"]}), how="cross").join(hours, how="cross")
    alb = alb.select(
        date(pl.col("d")).alias("_day"), "_hour", pl.lit(1).alias("_hours"),
        pl.lit("Elastic Load Balancing").alias("ServiceName"), pl.lit("Networking").alias("ServiceCategory"),
        pl.lit("LoadBalancer").alias("ResourceType"), pl.lit("LCU-Hrs").alias("PricingUnit"),
        (pl.col("requests") / 2_000_000 / 2 * shape).alias("PricingQuantity"),
        pl.lit(shared_acct).alias("SubAccountId"),
        pl.concat_str([pl.lit(f"arn:aws:elasticloadbalancing:us-east-1:{shared_acct}:loadbalancer/"), pl.col("_lb")]).alias("ResourceId"),
        pl.col("_lb").alias("ResourceName"),
        pl.lit("ELB-LCU").alias("SkuId"),
        (0.0225 + pl.col("requests") * 0.0000004 / 2 / 24 * shape).alias("EffectiveCost"),
    )
    hourly = pl.concat([nat, alb]).with_columns(pl.col("EffectiveCost").alias("BilledCost"), pl.col("EffectiveCost").alias("ListCost"))

    def daily_row(service: str, resource: str, cost: pl.Expr, unit: str) -> pl.DataFrame:
        category, sku, rtype = SERVICES[service]
        return daily_requests.select(
            date(pl.col("d")).alias("_day"), pl.lit(0).alias("_hour"), pl.lit(24).alias("_hours"),
            pl.lit(service).alias("ServiceName"), pl.lit(category).alias("ServiceCategory"),
            pl.lit(rtype).alias("ResourceType"), pl.lit(unit).alias("PricingUnit"), pl.lit(24.0).alias("PricingQuantity"),
            pl.lit(shared_acct).alias("SubAccountId"), pl.lit(resource).alias("ResourceId"),
            pl.lit(resource.rsplit("/", 1)[-1].rsplit(":", 1)[-1]).alias("ResourceName"),
            pl.lit(f"{sku}-SHARED").alias("SkuId"), cost.alias("EffectiveCost"),
        )  # fmt: skip

    aurora = daily_row(
        "Amazon Relational Database Service", f"arn:aws:rds:us-east-1:{shared_acct}:cluster:core-aurora",
        60.0 + pl.col("storage_bytes") / 1e9 * 0.1 / 30, "ACU-Hr",
    )
    cloudwatch = daily_row(
        "Amazon CloudWatch", f"arn:aws:logs:us-east-1:{shared_acct}:log-group:/platform/all",
        28.0 + pl.col("requests") * 0.00000012, "GB",
    )
    daily = pl.concat([aurora, cloudwatch]).with_columns(
        pl.col("EffectiveCost").alias("BilledCost"), pl.col("EffectiveCost").alias("ListCost")
    )
    return daily, hourly


def _monthly_rows(spec: DemoSpec, tenant_items: pl.DataFrame) -> pl.DataFrame:
    """Month-long charges (spread over their days by the reader) and credits, one set per month."""
    end = spec.start + dt.timedelta(days=spec.days)
    months = sorted({(spec.start + dt.timedelta(days=i)).replace(day=1) for i in range(spec.days)})
    committed = tenant_items.filter(pl.col("PricingCategory") == "Committed").group_by(
        pl.col("_day").dt.truncate("1mo").alias("_month")
    ).agg(pl.col("EffectiveCost").sum())
    by_month = dict(committed.iter_rows())
    rows = []
    for m in months:
        nxt = (m + dt.timedelta(days=32)).replace(day=1)
        lo, hi = max(m, spec.start), min(nxt, end)
        hours = (hi - lo).days * 24
        support = 1_450.0 * (hi - lo).days / (nxt - m).days
        rows.append(_month_row(lo, hours, "AWS Support (Business)", "Other", "Purchase", "Recurring", support, support,
                               f"arn:aws:support::{ACCOUNT[0]}:plan/business", "SUP-BUSINESS"))  # fmt: skip
        sp_fee = by_month.get(m, 0.0)
        rows.append(_month_row(lo, hours, "Amazon Elastic Compute Cloud", "Compute", "Purchase", "Recurring", sp_fee, 0.0,
                               "arn:aws:savingsplans::111122223333:savingsplan/sp-compute-2026", "SP-COMPUTE"))  # fmt: skip
        credit_day = lo + dt.timedelta(days=min(14, (hi - lo).days - 1))
        rows.append(_month_row(credit_day, 24, "Amazon Virtual Private Cloud", "Networking", "Credit", "One-Time", -12.5, -12.5,
                               f"arn:aws:ec2:us-east-1:{SUB_ACCOUNTS[2][0]}:natgateway/nat-0a1b2c3d", "SLA-CREDIT"))  # fmt: skip
    return pl.DataFrame(rows)


def _month_row(start: dt.date, hours: int, service: str, category: str, charge: str, freq: str,
               billed: float, effective: float, resource: str, sku: str) -> dict:  # fmt: skip
    return {
        "_day": start, "_hour": 0, "_hours": hours, "ServiceName": service, "ServiceCategory": category,
        "ResourceType": None, "PricingUnit": "Unit", "PricingQuantity": 1.0, "SubAccountId": SUB_ACCOUNTS[2][0],
        "ResourceId": resource, "ResourceName": None, "SkuId": sku, "BilledCost": billed,
        "EffectiveCost": effective, "ListCost": billed, "ChargeCategory": charge, "ChargeFrequency": freq,
    }  # fmt: skip


def _focus(frame: pl.DataFrame) -> pl.DataFrame:
    """The FOCUS columns of the generated rows (provider, account, periods, regions)."""
    start = pl.col("_day").cast(pl.Datetime("us")) + pl.duration(hours=pl.col("_hour"))
    end = start + pl.duration(hours=pl.col("_hours"))
    month = pl.col("_day").dt.truncate("1mo").cast(pl.Datetime("us"))
    sub_names = dict(SUB_ACCOUNTS)
    for c, default in (("ChargeCategory", "Usage"), ("ChargeFrequency", "Usage-Based"), ("PricingCategory", "Standard")):
        if c not in frame.columns:
            frame = frame.with_columns(pl.lit(default).alias(c))
        frame = frame.with_columns(pl.col(c).fill_null(default))
    for c in ("CommitmentDiscountId", "CommitmentDiscountCategory", "CommitmentDiscountStatus"):
        if c not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c))
    region = pl.col("SubAccountId").replace_strict({k: v[0] for k, v in REGIONS.items()}, default=None)
    return frame.select(
        pl.lit(ACCOUNT[0]).alias("BillingAccountId"), pl.lit(ACCOUNT[1]).alias("BillingAccountName"),
        pl.lit("USD").alias("BillingCurrency"),
        month.alias("BillingPeriodStart"), pl.col("_day").dt.offset_by("1mo").dt.truncate("1mo").cast(pl.Datetime("us")).alias("BillingPeriodEnd"),
        start.alias("ChargePeriodStart"), end.alias("ChargePeriodEnd"),
        "ChargeCategory", pl.lit(None, dtype=pl.String).alias("ChargeClass"), "ChargeFrequency",
        pl.concat_str([pl.col("ServiceName"), pl.lit(" "), pl.col("SkuId")]).alias("ChargeDescription"),
        "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountStatus",
        pl.col("PricingQuantity").alias("ConsumedQuantity"), pl.col("PricingUnit").alias("ConsumedUnit"),
        "BilledCost", "EffectiveCost", "ListCost", pl.col("ListCost").alias("ContractedCost"),
        pl.lit("Amazon Web Services, Inc.").alias("InvoiceIssuerName"), pl.lit("AWS").alias("ProviderName"),
        pl.lit("Amazon Web Services, Inc.").alias("PublisherName"), "PricingCategory", "PricingQuantity", "PricingUnit",
        region.alias("RegionId"),
        pl.col("SubAccountId").replace_strict({k: v[1] for k, v in REGIONS.items()}, default=None).alias("RegionName"),
        "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "SkuId",
        "SubAccountId", pl.col("SubAccountId").replace_strict(sub_names, default=None).alias("SubAccountName"),
        *(["Tags"] if "Tags" in frame.columns else []),
    )  # fmt: skip


def _write_focus_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Parquet with Tags as a real map<string, string>, as AWS data exports write them."""
    table = frame.to_arrow()
    tags = table.column("Tags").combine_chunks().cast(pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())])))
    as_map = pa.MapArray.from_arrays(tags.offsets, tags.values.field("key"), tags.values.field("value"), mask=tags.is_null())
    table = table.set_column(table.schema.get_field_index("Tags"), "Tags", as_map)
    pq.write_table(table, path, compression="zstd")


def _write_network_csv(frame: pl.DataFrame, path: Path, month_index: int) -> None:
    """The hourly network export as CSV with the quirks of real files: NULL literals, spelling drift."""
    tags = pl.lit('{"team": "platform", "cost_center": "shared-infra"}')
    out = frame.with_columns(
        pl.col("ChargePeriodStart").dt.strftime("%Y-%m-%d %H:%M:%S"),
        pl.col("ChargePeriodEnd").dt.strftime("%Y-%m-%d %H:%M:%S"),
        pl.col("BillingPeriodStart").dt.strftime("%Y-%m-%d %H:%M:%S"),
        pl.col("BillingPeriodEnd").dt.strftime("%Y-%m-%d %H:%M:%S"),
        # One export per month spells the enumeration differently, as the FOCUS sample does.
        pl.lit("Usage-based" if month_index % 2 else "Usage-Based").alias("ChargeFrequency"),
        tags.alias("Tags"),
    )
    out.write_csv(path, null_value="NULL", float_precision=10)


# Kubernetes. A shared EKS cluster whose CUR 2.0 export carries split cost allocation data (pods of
# eight enterprise tenants' namespaces, ingress-nginx and kube-system on four nodes, the nodes' unused
# capacity apart), and a batch cluster whose nodes the bill shows and whose OpenCost says how much of
# it each namespace used (recorded `/allocation` responses). Small next to the tenants' own cost, so
# the alert story above is unchanged; deterministic without drawing from the demo's random stream.
EKS_CLUSTER, BATCH_CLUSTER = "shared-eks", "batch"
EKS_NODES = [("i-0e1a2b3c4d5e60001", "m6i.xlarge", 0.192), ("i-0e1a2b3c4d5e60002", "m6i.xlarge", 0.192),
             ("i-0e1a2b3c4d5e60003", "m6i.xlarge", 0.192), ("i-0e1a2b3c4d5e60004", "m6i.xlarge", 0.192)]  # fmt: skip
BATCH_NODES = [("i-0b7a6c5d4e3f20001", "c6i.2xlarge", 0.34), ("i-0b7a6c5d4e3f20002", "c6i.2xlarge", 0.34)]
EKS_TENANTS, BATCH_TENANTS = 8, 10
SHARED_NAMESPACES = {"ingress-nginx": 0.9, "kube-system": 0.5}  # relative requests of the cluster's own pods
EC2 = "Amazon Elastic Compute Cloud"


def _k8s_tenants(tenants: pl.DataFrame, tier: str, n: int) -> list[str]:
    """The n highest-MRR tenants of a tier live for the whole period and cast in no alert role."""
    stable = tenants.filter((pl.col("tier") == tier) & pl.col("role").is_null() & (pl.col("onboard") == 0) & (pl.col("churn") < 0))
    return stable.sort(["mrr", "tenant_id"], descending=[True, False])["tenant_id"].head(n).to_list()


def _cur2_row(day: dt.date, resource: str, usage_type: str, unblended: float, tags: dict[str, str], **split) -> dict:
    start = dt.datetime.combine(day, dt.time())
    month = day.replace(day=1)
    return {
        "bill_invoice_id": f"EUINUS26-{month:%Y%m}", "bill_payer_account_id": ACCOUNT[0],
        "bill_billing_period_start_date": dt.datetime.combine(month, dt.time()),
        "bill_billing_period_end_date": dt.datetime.combine((month + dt.timedelta(days=32)).replace(day=1), dt.time()),
        "line_item_usage_account_id": SUB_ACCOUNTS[0][0], "line_item_line_item_type": "Usage",
        "line_item_usage_start_date": start, "line_item_usage_end_date": start + dt.timedelta(days=1),
        "line_item_product_code": "AmazonEC2", "line_item_usage_type": usage_type, "line_item_resource_id": resource,
        "line_item_unblended_cost": unblended, "line_item_currency_code": "USD",
        "line_item_line_item_description": usage_type, "product": {"product_name": EC2, "region": "us-east-1"},
        "product_region_code": "us-east-1", "resource_tags": tags,
        "split_line_item_parent_resource_id": split.get("parent"), "split_line_item_split_usage_ratio": split.get("ratio"),
        "split_line_item_split_cost": split.get("split"), "split_line_item_unused_cost": split.get("unused"),
        "split_line_item_public_on_demand_split_cost": split.get("split"),
        "split_line_item_public_on_demand_unused_cost": split.get("unused"),
    }  # fmt: skip


def _kubernetes(spec: DemoSpec, tenants: pl.DataFrame) -> tuple[list[dict], dict[str, dict], dict[str, float]]:
    """(CUR 2.0 rows of both clusters' nodes and the EKS pods, recorded OpenCost responses per month,
    figures for the summary)."""
    eks_tenants, batch_tenants = _k8s_tenants(tenants, "enterprise", EKS_TENANTS), _k8s_tenants(tenants, "mid-market", BATCH_TENANTS)
    eks_ns = {f"tenant-{t}": 1.0 + 0.35 * (i % 4) for i, t in enumerate(eks_tenants)} | SHARED_NAMESPACES
    rows: list[dict] = []
    responses: dict[str, dict] = {}
    idle_total = 0.0
    for d in range(spec.days):
        day = spec.start + dt.timedelta(days=d)
        weekend = (spec.start.weekday() + d) % 7 >= 5
        for k, (node, kind, hourly) in enumerate(EKS_NODES):
            cost = round(hourly * 24, 6)
            rows.append(_cur2_row(day, node, f"USE1-BoxUsage:{kind}", cost, {"aws_eks_cluster_name": EKS_CLUSTER}))
            # Requests fill 62-80% of a node (less on weekends, when batch-like tenants scale in).
            used = (0.62 if weekend else 0.74) + 0.06 * np.sin(0.45 * d + k)
            weights = {ns: w * (1.0 + 0.25 * np.sin(0.3 * d + 1.7 * j + k)) for j, (ns, w) in enumerate(eks_ns.items())}
            total_w = sum(weights.values())
            for ns, w in weights.items():
                ratio = used * w / total_w
                split, unused = cost * ratio, cost * (1.0 - used) * w / total_w
                idle_total += unused
                pod = f"arn:aws:eks:us-east-1:{SUB_ACCOUNTS[0][0]}:pod/{EKS_CLUSTER}/{ns}/{ns.removeprefix('tenant-')[:20]}-{k}"
                tags = {"aws_eks_cluster_name": EKS_CLUSTER, "aws_eks_namespace": ns}
                rows.append(_cur2_row(day, pod, "USE1-EKS-EC2-vCPU-Hours", 0.0, tags, parent=node, ratio=ratio, split=split, unused=unused))
        for node, kind, hourly in BATCH_NODES:
            rows.append(_cur2_row(day, node, f"USE1-BoxUsage:{kind}", round(hourly * 24, 6), {"aws_eks_cluster_name": BATCH_CLUSTER}))
        # OpenCost on the batch cluster: list-price cost per namespace (its own estimate, not the bill).
        costs = {f"tenant-{t}": round(2.2 * (1.0 + 0.6 * ((i * 7) % 5) / 4) * (1.0 + 0.2 * np.sin(0.2 * d + i)), 5)
                 for i, t in enumerate(batch_tenants)}  # fmt: skip
        costs |= {"airflow": 3.1, "__idle__": round(6.0 + 2.0 * np.sin(0.5 * d), 5), "__unallocated__": 0.42}
        responses.setdefault(f"{day:%Y-%m}", {"code": 200, "data": []})["data"].append(
            {name: _opencost_allocation(name, day, total) for name, total in costs.items()}
        )
    figures = {"eks_idle": idle_total, "eks_tenants": len(eks_tenants), "batch_tenants": len(batch_tenants)}
    return rows, responses, figures


def _opencost_allocation(name: str, day: dt.date, total: float) -> dict:
    """One allocation as OpenCost's `/allocation` marshals it (AllocationJSON), a namespace over one UTC day."""
    start, end = f"{day.isoformat()}T00:00:00Z", f"{(day + dt.timedelta(days=1)).isoformat()}T00:00:00Z"
    cpu, ram = round(total * 0.62, 5), round(total * 0.31, 5)
    properties = {"cluster": BATCH_CLUSTER} | ({} if name.startswith("__") else {"namespace": name})
    return {
        "name": name, "properties": properties, "window": {"start": start, "end": end}, "start": start, "end": end,
        "minutes": 1440.0, "cpuCores": round(cpu / 0.76, 4), "cpuCoreRequestAverage": round(cpu / 0.76, 4),
        "cpuCoreUsageAverage": round(cpu / 1.1, 4), "cpuCoreHours": round(cpu / 0.76 * 24, 4), "cpuCost": cpu,
        "cpuCostAdjustment": 0.0, "cpuCostIdle": 0.0, "cpuEfficiency": 0.69, "gpuCount": 0.0, "gpuHours": 0.0,
        "gpuCost": 0.0, "gpuCostAdjustment": 0.0, "gpuCostIdle": 0.0, "gpuEfficiency": 0.0,
        "networkTransferBytes": 0.0, "networkReceiveBytes": 0.0, "networkCost": 0.0, "networkCrossZoneCost": 0.0,
        "networkCrossRegionCost": 0.0, "networkInternetCost": 0.0, "networkCostAdjustment": 0.0,
        "loadBalancerCost": 0.0, "loadBalancerCostAdjustment": 0.0, "pvBytes": 0.0, "pvByteHours": 0.0,
        "pvCost": round(total - cpu - ram, 5), "pvs": None, "pvCostAdjustment": 0.0,
        "ramBytes": round(ram / 0.1 * 2**30), "ramByteRequestAverage": round(ram / 0.1 * 2**30),
        "ramByteUsageAverage": round(ram / 0.14 * 2**30), "ramByteHours": round(ram / 0.1 * 2**30 * 24),
        "ramCost": ram, "ramCostAdjustment": 0.0, "ramCostIdle": 0.0, "ramEfficiency": 0.71,
        "externalCost": 0.0, "sharedCost": 0.0, "totalCost": total, "totalEfficiency": 0.7,
        "lbAllocations": None, "gpuAllocation": None,
    }  # fmt: skip


CUR2_SCHEMA = pa.schema([
    ("bill_invoice_id", pa.string()), ("bill_payer_account_id", pa.string()),
    ("bill_billing_period_start_date", pa.timestamp("ms")), ("bill_billing_period_end_date", pa.timestamp("ms")),
    ("line_item_usage_account_id", pa.string()), ("line_item_line_item_type", pa.string()),
    ("line_item_usage_start_date", pa.timestamp("ms")), ("line_item_usage_end_date", pa.timestamp("ms")),
    ("line_item_product_code", pa.string()), ("line_item_usage_type", pa.string()), ("line_item_resource_id", pa.string()),
    ("line_item_unblended_cost", pa.float64()), ("line_item_currency_code", pa.string()),
    ("line_item_line_item_description", pa.string()), ("product", pa.map_(pa.string(), pa.string())),
    ("product_region_code", pa.string()), ("resource_tags", pa.map_(pa.string(), pa.string())),
    ("split_line_item_parent_resource_id", pa.string()), ("split_line_item_split_usage_ratio", pa.float64()),
    ("split_line_item_split_cost", pa.float64()), ("split_line_item_unused_cost", pa.float64()),
    ("split_line_item_public_on_demand_split_cost", pa.float64()), ("split_line_item_public_on_demand_unused_cost", pa.float64()),
])  # fmt: skip


def _write_cur2_parquet(rows: list[dict], path: Path) -> None:
    """CUR 2.0 as Data Exports write it: snake_case columns, `product` and `resource_tags` as maps."""
    records = [{**r, "product": list(r["product"].items()), "resource_tags": list(r["resource_tags"].items())} for r in rows]
    pq.write_table(pa.Table.from_pylist(records, schema=CUR2_SCHEMA), path, compression="zstd")


def generate_demo(out_dir: Path, spec: DemoSpec = DemoSpec(), log: Callable[[str], None] = print) -> DemoSummary:
    """Write the demo SaaS into `out_dir` (billing/, usage/, customers.csv); replaces earlier output."""
    rng = np.random.default_rng(spec.seed)
    out_dir = Path(out_dir)
    for sub in ("billing", "usage", "opencost"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
        for old in (out_dir / sub).glob("*"):
            old.unlink()
    log(f"generating {spec.customers} customers over {spec.days} days from {spec.start} (seed {spec.seed})")
    pop = _population(spec, rng)
    td = _tenant_days(spec, pop.tenants, rng)
    log(f"usage: {td.height:,} tenant-days")
    tenant_items = _tenant_line_items(spec, td, rng)
    daily_shared, hourly_network = _shared_line_items(spec, td)
    monthly = _monthly_rows(spec, tenant_items)
    # A deleted tenant still running a forgotten instance: tagged, but not in the customer records.
    orphan = tenant_items.filter(pl.col("ServiceName") == "Amazon Elastic Compute Cloud").head(1).with_columns(
        pl.lit([{"key": "tenant_id", "value": "legacy-import-0999"}]).alias("Tags"),
        pl.lit("arn:aws:ec2:us-east-1:210987654321:instance/legacy-import-0999").alias("ResourceId"),
    )
    orphan = pl.concat([orphan.with_columns(pl.lit(spec.start + dt.timedelta(days=i)).alias("_day")) for i in range(spec.days)])
    parquet_rows = pl.concat([tenant_items, orphan, daily_shared, monthly], how="diagonal_relaxed")
    focus_rows = _focus(parquet_rows.with_columns(pl.col("Tags").fill_null(pl.lit([], dtype=pl.List(pl.Struct({"key": pl.String, "value": pl.String}))))))
    network = _focus(hourly_network)

    files: list[Path] = []

    def by_month(frame: pl.DataFrame, column: str) -> list[tuple[str, pl.DataFrame]]:
        parts = frame.with_columns(pl.col(column).dt.strftime("%Y-%m").alias("_m")).partition_by("_m", as_dict=True)
        return sorted(((key[0], part.drop("_m")) for key, part in parts.items()), key=lambda kv: kv[0])

    for month, part in by_month(focus_rows, "ChargePeriodStart"):
        path = out_dir / "billing" / f"aws-focus-{month}.parquet"
        _write_focus_parquet(part.sort("ChargePeriodStart", "ResourceId"), path)
        files.append(path)
        log(f"wrote {path} ({part.height:,} line items)")
    for i, (month, part) in enumerate(by_month(network, "ChargePeriodStart")):
        path = out_dir / "billing" / f"aws-network-hourly-{month}.csv"
        _write_network_csv(part.sort("ChargePeriodStart", "ResourceId"), path, i)
        files.append(path)
        log(f"wrote {path} ({part.height:,} line items)")
    k8s_rows, opencost, k8s = _kubernetes(spec, pop.tenants)
    for month in sorted({r["line_item_usage_start_date"].strftime("%Y-%m") for r in k8s_rows}):
        part = [r for r in k8s_rows if r["line_item_usage_start_date"].strftime("%Y-%m") == month]
        path = out_dir / "billing" / f"aws-cur2-eks-{month}.parquet"
        _write_cur2_parquet(part, path)
        files.append(path)
        log(f"wrote {path} ({len(part):,} CUR 2.0 line items, split cost allocation data of {EKS_CLUSTER})")
    for month, response in sorted(opencost.items()):
        path = out_dir / "opencost" / f"allocation-{month}.json"
        path.write_text(json.dumps(response, indent=1))
        files.append(path)
    log(f"wrote {len(opencost)} recorded OpenCost /allocation responses of the {BATCH_CLUSTER} cluster under {out_dir / 'opencost'}")
    usage = _usage_long(spec, td)
    for month, part in by_month(usage, "usage_date"):
        path = out_dir / "usage" / f"usage-{month}.parquet"
        part.sort("usage_date", "tenant_id", "metric").write_parquet(path)
        files.append(path)
    customers_path = out_dir / "customers.csv"
    pop.customers.write_csv(customers_path)
    files.append(customers_path)
    log(f"wrote {customers_path} ({pop.customers['customer_id'].n_unique()} customers, {pop.customers.height} rows)")

    roles = pop.tenants.filter(pl.col("role").is_not_null()).select("role", "customer_id", "tenant_id")
    highlights = {r: f"{c} ({t})" for r, c, t in roles.iter_rows()}
    highlights["kubernetes"] = (
        f"{EKS_CLUSTER}: {k8s['eks_tenants']} tenant namespaces, ${k8s['eks_idle']:,.2f} idle over the period; "
        f"{BATCH_CLUSTER}: {k8s['batch_tenants']} tenant namespaces split by OpenCost"
    )
    return DemoSummary(
        out_dir=out_dir, start=spec.start, end=spec.start + dt.timedelta(days=spec.days - 1),
        customers=pop.customers["customer_id"].n_unique(), tenants=pop.tenants.height,
        billing_rows=focus_rows.height + network.height + len(k8s_rows), usage_rows=usage.height,
        files=sorted(files), highlights=highlights,
    )


def _usage_long(spec: DemoSpec, td: pl.DataFrame) -> pl.DataFrame:
    """Usage in the long format, plus a synthetic-monitoring tenant no customer owns."""
    date = _date_of(spec)
    metrics = [("requests", "api"), ("storage_bytes", None), ("active_sessions", None)]
    parts = [
        td.select(
            date(pl.col("d")).alias("usage_date"), "tenant_id",
            pl.lit(service, dtype=pl.String).alias("service_name"), pl.lit(metric).alias("metric"),
            pl.col(metric).cast(pl.Float64).alias("value"),
        )
        for metric, service in metrics
    ]  # fmt: skip
    # Searches: tenants with search clusters (ElastiCache: enterprise and mid-market), until the cache ships.
    cache_day = spec.days - SEARCH_CACHE_DAYS_BEFORE_END
    searches = td.filter(pl.col("tier").is_in(["enterprise", "mid-market"])).select(
        date(pl.col("d")).alias("usage_date"), "tenant_id", pl.lit("search", dtype=pl.String).alias("service_name"),
        pl.lit("searches").alias("metric"),
        (pl.col("requests") * SEARCHES_PER_REQUEST * pl.when(pl.col("d") >= cache_day).then(1 - SEARCH_CACHE_DROP).otherwise(1.0))
        .round(0).cast(pl.Float64).alias("value"),
    )  # fmt: skip
    parts.append(searches)
    canary = pl.DataFrame({"d": np.arange(spec.days)}).select(
        date(pl.col("d")).alias("usage_date"), pl.lit("synthetic-canary").alias("tenant_id"),
        pl.lit("api").alias("service_name"), pl.lit("requests").alias("metric"), pl.lit(250_000.0).alias("value"),
    )  # fmt: skip
    return pl.concat(parts + [canary]).filter(pl.col("value") > 0)
