"""OpenCost's allocation API as a usage source, against a local HTTP server answering with the shape
OpenCost's `/allocation` returns (`{"code": 200, "data": [<one map of allocations per step>]}`, each
allocation as OpenCost's AllocationJSON marshals it), errors included."""

import datetime as dt
import json

import polars as pl
import pytest
from werkzeug import Response

from unitcost_platform.config_pools import PoolConfig, PoolMatch
from unitcost_platform.sources.usage.opencost import OpenCostError, OpenCostSource, fetch_opencost
from unitcost_platform.transforms.allocation import allocate
from unitcost_platform_tests.helpers import billing, customers

D1, D2 = dt.date(2026, 3, 9), dt.date(2026, 3, 10)


def allocation(name: str, day: dt.date, total: float, cluster: str = "prod-eks") -> dict:
    """One allocation as OpenCost marshals it (AllocationJSON), for a namespace over one UTC day."""
    start = f"{day.isoformat()}T00:00:00Z"
    end = f"{(day + dt.timedelta(days=1)).isoformat()}T00:00:00Z"
    cpu, ram = round(total * 0.6, 5), round(total * 0.3, 5)
    return {
        "name": name,
        "properties": {"cluster": cluster, "namespace": name} if not name.startswith("__") else {"cluster": cluster},
        "window": {"start": start, "end": end}, "start": start, "end": end, "minutes": 1440.0,
        "cpuCores": 1.5, "cpuCoreRequestAverage": 1.5, "cpuCoreUsageAverage": 0.9, "cpuCoreHours": 36.0,
        "cpuCost": cpu, "cpuCostAdjustment": 0.0, "cpuCostIdle": 0.0, "cpuEfficiency": 0.6,
        "gpuCount": 0.0, "gpuHours": 0.0, "gpuCost": 0.0, "gpuCostAdjustment": 0.0, "gpuCostIdle": 0.0,
        "gpuEfficiency": 0.0, "networkTransferBytes": 1.2e9, "networkReceiveBytes": 3.4e9, "networkCost": 0.0,
        "networkCrossZoneCost": 0.0, "networkCrossRegionCost": 0.0, "networkInternetCost": 0.0,
        "networkCostAdjustment": 0.0, "loadBalancerCost": round(total - cpu - ram, 5), "loadBalancerCostAdjustment": 0.0,
        "pvBytes": 0.0, "pvByteHours": 0.0, "pvCost": 0.0, "pvs": None, "pvCostAdjustment": 0.0,
        "ramBytes": 4.0e9, "ramByteRequestAverage": 4.0e9, "ramByteUsageAverage": 2.5e9, "ramByteHours": 9.6e10,
        "ramCost": ram, "ramCostAdjustment": 0.0, "ramCostIdle": 0.0, "ramEfficiency": 0.62,
        "externalCost": 0.0, "sharedCost": 0.0, "totalCost": total, "totalEfficiency": 0.61,
        "lbAllocations": None, "gpuAllocation": None,
    }  # fmt: skip


def day_set(day: dt.date, costs: dict[str, float]) -> dict:
    return {name: allocation(name, day, total) for name, total in costs.items()}


BODY = {"code": 200, "data": [
    day_set(D1, {"tenant-acme": 6.0, "tenant-beta": 2.0, "shop-gamma": 2.0, "kube-system": 1.5, "__idle__": 4.0}),
    day_set(D2, {"tenant-acme": 3.0, "tenant-beta": 3.0, "__idle__": 2.5, "__unallocated__": 0.4}),
]}  # fmt: skip


def _source(httpserver, **extra) -> OpenCostSource:
    return OpenCostSource(
        url=httpserver.url_for("/"), metrics=[{"metric": "k8s_cost_share"}],
        namespace_map={"^tenant-(.+)$": "{1}", "shop-gamma": "gamma"}, max_retries=2, **extra,
    )  # fmt: skip


def test_each_namespace_cost_becomes_usage_of_its_tenant(httpserver):
    httpserver.expect_request("/allocation", query_string={
        "window": "2026-03-09T00:00:00Z,2026-03-11T00:00:00Z", "aggregate": "namespace", "step": "1d", "accumulate": "false",
    }).respond_with_json(BODY)  # fmt: skip
    lines: list[str] = []
    usage = fetch_opencost(_source(httpserver), [D1, D2], log=lines.append, sleep=lambda _: None)
    got = {(r["usage_date"], r["tenant_id"]): r["value"] for r in usage.iter_rows(named=True)}
    assert got == {(D1, "acme"): 6.0, (D1, "beta"): 2.0, (D1, "gamma"): 2.0, (D2, "acme"): 3.0, (D2, "beta"): 3.0}
    assert set(usage["metric"]) == {"k8s_cost_share"} and set(usage["source"]) == {"opencost"}
    said = "\n".join(lines)
    assert "__idle__ $6.50 (not a tenant, not counted)" in said and "__unallocated__ $0.40" in said
    assert "namespaces without a tenant in usage.opencost.namespace_map (not counted): kube-system" in said


def test_the_bill_decides_the_dollars_opencost_the_shares(httpserver):
    # The cluster's node cost on the bill is $30 on D1; OpenCost's list-price shares are acme 6, beta 2,
    # gamma 2 (of 10 mapped): acme 18, beta 6, gamma 6.
    httpserver.expect_request("/allocation").respond_with_json(BODY)
    usage = fetch_opencost(_source(httpserver), [D1, D2], sleep=lambda _: None)
    bill = billing([{"day": D1, "cost": 30.0, "service": "Amazon EC2", "tags": '{"eks:cluster-name": "prod-eks"}'}])
    pools = [PoolConfig(name="eks", match=PoolMatch(tags={"eks:cluster-name": "prod-eks"}), driver="k8s_cost_share")]
    dims = customers([{"customer_id": c.upper(), "tenant_id": c} for c in ("acme", "beta", "gamma")], [D1])
    out = allocate(bill, usage, dims, [D1], pools, "EffectiveCost")
    assert dict(out.group_by("customer_id").agg(pl.col("allocated_cost").sum()).iter_rows()) == {
        "ACME": pytest.approx(18.0), "BETA": pytest.approx(6.0), "GAMMA": pytest.approx(6.0)
    }


def test_a_server_error_is_retried_and_a_refusal_names_the_cause(httpserver):
    httpserver.expect_ordered_request("/allocation").respond_with_data("upstream", status=503)
    httpserver.expect_ordered_request("/allocation").respond_with_json(BODY)
    assert fetch_opencost(_source(httpserver), [D1], sleep=lambda _: None).height == 3

    httpserver.clear()
    # OpenCost answers a bad window with HTTP 400 and its own envelope.
    httpserver.expect_request("/allocation").respond_with_response(Response(
        json.dumps({"code": 400, "data": None, "message": "error parsing window (2026-03-09T00:00:00Z,x): invalid"}),
        status=400, content_type="application/json",
    ))  # fmt: skip
    with pytest.raises(OpenCostError) as refused:
        fetch_opencost(_source(httpserver), [D1], sleep=lambda _: None)
    assert "HTTP 400 error parsing window" in str(refused.value) and "usage.opencost.url" in str(refused.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"code": 200}, "has no 'data' list of allocation sets"),
        ({"code": 200, "data": [{"tenant-acme": {"name": "tenant-acme", "start": "2026-03-09T00:00:00Z"}}]}, "has no numeric totalCost"),
        ({"code": 200, "data": [{"tenant-acme": {"name": "tenant-acme", "start": "soon", "totalCost": 1.0}}]}, "start 'soon' is not a time"),
    ],
)
def test_an_unreadable_answer_is_an_error(httpserver, body, message):
    httpserver.expect_request("/allocation").respond_with_json(body)
    with pytest.raises(OpenCostError) as error:
        fetch_opencost(_source(httpserver), [D1], sleep=lambda _: None)
    assert message in str(error.value)


def test_a_pattern_without_a_group_for_its_template_is_a_config_error():
    with pytest.raises(ValueError, match="has no capture group"):
        OpenCostSource(url="http://x", metrics=[{"metric": "m"}], namespace_map={"^tenant-.+$": "{1}"})


def test_recorded_responses_are_read_by_the_same_code(tmp_path):
    # url: file://<dir> replays /allocation responses saved as files (one per month here), relative
    # to the data dir: the same values as the live API, only the days asked for.
    from unitcost_platform.sources.connector import ReadContext
    from unitcost_platform.sources.usage.opencost import read

    recorded = tmp_path / "opencost"
    recorded.mkdir()
    (recorded / "allocation-2026-03a.json").write_text(json.dumps({"code": 200, "data": BODY["data"][:1]}))
    (recorded / "allocation-2026-03b.json").write_text(json.dumps({"code": 200, "data": BODY["data"][1:]}))
    cfg = OpenCostSource(url="file://opencost", metrics=[{"metric": "k8s_cost_share"}],
                         namespace_map={"^tenant-(.+)$": "{1}", "shop-gamma": "gamma"})  # fmt: skip
    lines: list[str] = []
    context = ReadContext(cfg=None, data_dir=tmp_path, log=lines.append, today=D2)
    usage = read(context, cfg, [D2])
    assert {(r["usage_date"], r["tenant_id"]): r["value"] for r in usage.iter_rows(named=True)} == {(D2, "acme"): 3.0, (D2, "beta"): 3.0}
    assert "__idle__ $2.50 (not a tenant, not counted)" in "\n".join(lines)
    (recorded / "broken.json").write_text('{"code": 500, "message": "boom"}')
    with pytest.raises(OpenCostError, match="code 500"):
        read(context, cfg, [D2])
    empty = OpenCostSource(url=f"file://{tmp_path / 'nothing'}", metrics=[{"metric": "k8s_cost_share"}])
    with pytest.raises(OpenCostError, match="no recorded allocation responses"):
        read(context, empty, [D2])
