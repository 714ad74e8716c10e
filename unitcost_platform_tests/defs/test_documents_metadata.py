"""The alerts and messages the delivery sensor and the digest read from materializations."""

import dagster as dg
from dagster_shared.serdes import deserialize_value, serialize_value

from unitcost_platform.defs.metadata import documents_metadata, read_documents

ALERTS = [
    {"alert_id": "2026-03-01:P1:acme", "day": "2026-03-01", "value": 1.25, "customer_id": "acme",
     "drivers": [{"service": "api", "owner": "platform", "cost_7d": 12.5, "change_7d": None}],
     "owners": ["platform", "payments"], "message": "Acme: cost/MRR 1.25 \u2265 1.00 \u2014 api"},
    {"alert_id": "2026-03-01:SEGMENT:segment", "day": "2026-03-01", "value": 0.0, "customer_id": None,
     "drivers": [], "owners": [], "message": ""},
]  # fmt: skip


def test_round_trip_through_a_stored_event():
    event = dg.AssetMaterialization("cost_alerts", metadata={"alerts_payload": documents_metadata(ALERTS)})
    stored = deserialize_value(serialize_value(event), dg.AssetMaterialization)
    assert isinstance(stored.metadata["alerts_payload"], dg.TextMetadataValue)
    assert read_documents(stored.metadata["alerts_payload"]) == ALERTS


def test_reads_what_materializations_stored_before_as_json():
    event = dg.AssetMaterialization("cost_alerts", metadata={"alerts_payload": dg.MetadataValue.json(ALERTS)})
    stored = deserialize_value(serialize_value(event), dg.AssetMaterialization)
    assert read_documents(stored.metadata["alerts_payload"]) == ALERTS


def test_no_entry_no_documents():
    assert read_documents(None) == []
    assert read_documents(documents_metadata([])) == []
