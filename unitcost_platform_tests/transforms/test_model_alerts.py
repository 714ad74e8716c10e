"""ANOMALY and FORECAST rows of cost_alerts: same columns and document shape as the other alerts."""

import json

import polars as pl

from unitcost_platform.config import AlertsConfig, AnomaliesConfig, ForecastConfig, OwnersConfig
from unitcost_platform.transforms.alerts import (
    COST_ALERTS_SCHEMA,
    alerts_as_documents,
    append_model_alerts,
)
from unitcost_platform.transforms.anomalies import cost_anomalies
from unitcost_platform.transforms.forecast import margin_forecast
from unitcost_platform_tests.transforms.synthetic_customers import OWNERS, customers_frames, day
from unitcost_platform_tests.transforms.test_forecast import growing, unit_rows

OWNERS_CFG = OwnersConfig(services=OWNERS, default_team="platform")


def test_anomaly_and_forecast_rows_join_the_days_alerts():
    frames = customers_frames(1, 91, seed=11, compute_price_step=(90, (3 - 0.3) / 0.7))
    anomalies = cost_anomalies(frames["cost"], frames["units"], frames["customers"], frames["service_costs"],
                               [day(90)], AnomaliesConfig(), OWNERS_CFG)  # fmt: skip
    series = growing(91, 2)
    forecast_unit = unit_rows({"grower": series}, {"grower": 30 * series[61:91].mean() / 0.17})
    forecasts = margin_forecast(forecast_unit, [day(i) for i in range(60, 91)], AlertsConfig(), ForecastConfig(horizon_days=30))
    warned = forecasts.filter(pl.col("is_forecast_alert"))
    assert anomalies["is_anomaly"].to_list() == [True] and warned.height == 1
    # The forecast's day is the anomaly's in this test: shift the warning onto day 90.
    forecasts = warned.with_columns(pl.lit(day(90)).alias("day"))
    unit = pl.concat([
        frames["truth"].select("day", "customer_id", "total_cost"),
        forecast_unit.select("day", "customer_id", "total_cost"),
    ]).with_columns(
        pl.col("customer_id").alias("customer_name"), pl.lit("smb").alias("tier"), pl.lit("emea").alias("segment"),
        pl.lit(5000.0).alias("mrr"), pl.lit(1500.0).alias("monthly_run_rate"), pl.lit(0.17).alias("cost_to_mrr"),
    )  # fmt: skip
    service_costs = pl.concat([
        frames["service_costs"],
        forecast_unit.select("day", "customer_id", pl.lit("Amazon DynamoDB").alias("service_name"),
                             pl.col("total_cost").alias("allocated_cost")),
    ])  # fmt: skip
    existing = pl.DataFrame(schema=COST_ALERTS_SCHEMA)
    alerts = append_model_alerts(existing, unit, anomalies, forecasts, service_costs, [day(90)], AlertsConfig(),
                                 OWNERS_CFG, 5.0, 30, "requests")  # fmt: skip
    assert alerts.schema == pl.Schema(COST_ALERTS_SCHEMA)
    assert alerts.select("alert_type", "customer_id").rows() == [("ANOMALY", "c0000"), ("FORECAST", "grower")]
    anomaly, forecast = alerts_as_documents(alerts)
    assert anomaly["alert_id"] == f"{day(90)}:ANOMALY:c0000" and anomaly["metric"] == "impact"
    assert anomaly["value"] == anomalies["impact"][0] and anomaly["threshold"] == 5.0
    assert anomaly["owners"][0] == "compute-team" and anomaly["drivers"][0]["service"] == "Amazon Elastic Compute Cloud"
    assert anomaly["message"].startswith("ANOMALY: c0000 (smb) cost $") and "cost per 1k requests" in anomaly["message"]
    assert forecast["value"] == forecasts["days_to_p2"][0] and forecast["threshold"] == 30.0
    assert forecast["owners"] == ["platform"] and forecast["drivers"][0]["service"] == "Amazon DynamoDB"
    assert "is projected to cross 20% (P2) in" in forecast["message"]
    assert set(anomaly) == set(forecast)
    json.dumps([anomaly, forecast])  # plain JSON, as the sensor stores it


def test_nothing_to_add_leaves_the_alerts_as_they_are():
    existing = pl.DataFrame([{c: None for c in COST_ALERTS_SCHEMA} | {"day": day(5), "alert_type": "P1"}],
                            schema=COST_ALERTS_SCHEMA)  # fmt: skip
    empty_anomalies = cost_anomalies(*(pl.DataFrame(schema=s) for s in (
        {"day": pl.Date, "customer_id": pl.String, "total_cost": pl.Float64},
        {"day": pl.Date, "customer_id": pl.String, "units": pl.Float64},
        {"day": pl.Date, "customer_id": pl.String, "customer_name": pl.String, "tier": pl.String, "status": pl.String},
        {"day": pl.Date, "customer_id": pl.String, "service_name": pl.String, "allocated_cost": pl.Float64},
    )), [day(5)], AnomaliesConfig(), OWNERS_CFG)  # fmt: skip
    empty_forecasts = margin_forecast(unit_rows({"x": growing(3, 1)}, {"x": 100.0}).clear(), [day(5)], AlertsConfig(), ForecastConfig())
    assert empty_anomalies.is_empty() and empty_forecasts.is_empty()
    unit = pl.DataFrame(schema={"day": pl.Date, "customer_id": pl.String, "customer_name": pl.String, "tier": pl.String,
                                "segment": pl.String, "mrr": pl.Float64, "monthly_run_rate": pl.Float64,
                                "cost_to_mrr": pl.Float64})  # fmt: skip
    out = append_model_alerts(existing, unit, empty_anomalies, empty_forecasts, pl.DataFrame(), [day(5)],
                              AlertsConfig(), OWNERS_CFG, 5.0, 14, "requests")  # fmt: skip
    assert out.equals(existing)
