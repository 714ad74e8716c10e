"""Synthetic customers for the anomaly and forecast tests: daily requests and cost per request with
lognormal noise (σ = 0.1 on each), split over two services, from a fixed seed."""

import datetime as dt

import numpy as np
import polars as pl

START = dt.date(2026, 1, 5)  # a Monday
SIGMA = 0.1
SERVICES = {"Amazon Elastic Compute Cloud": 0.7, "Amazon Simple Storage Service": 0.3}
OWNERS = {"Amazon Elastic Compute Cloud": "compute-team", "Amazon Simple Storage Service": "storage-team"}


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


def customers_frames(
    n_customers: int,
    n_days: int,
    seed: int,
    requests: float | np.ndarray = 100_000.0,
    cost_per_1k: float | np.ndarray = 1.0,
    weekend_factor: float = 1.0,
    volume_step: tuple[int, float] | None = None,
    compute_price_step: tuple[int, float] | None = None,
) -> dict[str, pl.DataFrame]:
    """cost, units, customers and service_costs frames as cost_anomalies takes them.

    volume_step (day, factor): requests (and so cost) multiplied from that day on;
    compute_price_step (day, factor): the compute service's cost per request multiplied from that day.
    Returns also `truth`: per day and customer, the noise-free expectation and the realized figures.
    """
    rng = np.random.default_rng(seed)
    base_req = np.broadcast_to(np.asarray(requests, dtype=float), (n_customers,))
    base_price = np.broadcast_to(np.asarray(cost_per_1k, dtype=float), (n_customers,)) / 1000
    rows, svc_rows = [], []
    for i in range(n_days):
        d = day(i)
        weekday = weekend_factor if d.weekday() >= 5 else 1.0
        volume = volume_step[1] if volume_step and i >= volume_step[0] else 1.0
        units = base_req * weekday * volume * rng.lognormal(0.0, SIGMA, n_customers)
        noise = rng.lognormal(0.0, SIGMA, n_customers)
        step = compute_price_step[1] if compute_price_step and i >= compute_price_step[0] else 1.0
        for c in range(n_customers):
            old = units[c] * base_price[c] * noise[c]
            per_service = {s: old * share * (step if s.startswith("Amazon Elastic") else 1.0) for s, share in SERVICES.items()}
            total = sum(per_service.values())
            rows.append((d, f"c{c:04d}", float(units[c]), float(total), float(old)))
            svc_rows += [(d, f"c{c:04d}", s, float(v)) for s, v in per_service.items()]
    truth = pl.DataFrame(rows, schema=["day", "customer_id", "units", "total_cost", "cost_at_old_price"], orient="row")
    return {
        "truth": truth,
        "cost": truth.select("day", "customer_id", "total_cost"),
        "units": truth.select("day", "customer_id", "units"),
        "customers": truth.select(
            "day", "customer_id", pl.col("customer_id").alias("customer_name"),
            pl.lit("mid-market").alias("tier"), pl.lit("active").alias("status"),
        ),
        "service_costs": pl.DataFrame(svc_rows, schema=["day", "customer_id", "service_name", "allocated_cost"], orient="row"),
    }  # fmt: skip
