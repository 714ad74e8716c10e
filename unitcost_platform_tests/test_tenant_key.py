"""One tenant key everywhere: billing tags (DuckDB's JSON reader), usage and customers (Polars) agree
for any Unicode, and a customer's direct cost reaches it whatever case and spaces each source used."""

import json
import unicodedata

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.config_base import TenantConfig
from unitcost_platform.contracts.focus import first_tag
from unitcost_platform.contracts.tenant_key import tenant_key, tenant_key_expr, tenant_keys
from unitcost_platform.sources.billing.files import read_billing_files
from unitcost_platform.sources.customers.files import read_customer_files
from unitcost_platform.sources.usage.files import read_usage_files
from unitcost_platform.transforms.allocation import allocate
from unitcost_platform.transforms.customers import customer_dimension
from unitcost_platform_tests.helpers import D, focus_csv, write_customers_csv, write_usage_csv

# Any Unicode a JSON string can carry: every code point but lone surrogates.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
PADDING = st.text(st.sampled_from(" \t\u00a0\u2003\u3000\u202f\n"), max_size=3)


def test_final_sigma_ligatures_and_fullwidth_letters_meet():
    assert tenant_key("ΟΔΥΣΣΕΥΣ") == tenant_key("οδυσσευς") == "οδυσσευσ"
    assert tenant_key("Straße") == tenant_key("STRASSE") == "strasse"
    assert tenant_key("ＡＣＭＥ") == tenant_key("\u00a0acme\u3000") == "acme"
    assert tenant_key(" \t\u00a0 ") is None and tenant_key(None) is None
    assert tenant_key(" Acme\u00a0", "none") == "Acme"


@settings(max_examples=300, deadline=None)
@given(value=TEXT, left=PADDING, right=PADDING)
def test_billing_tags_and_polars_sources_give_the_same_key(value, left, right):
    raw = left + value + right
    tags = pl.Series([json.dumps({"tenant_id": raw}), json.dumps({"TenantId": raw, "tenant": ""})])
    from_billing = first_tag(tags, TenantConfig().tag_keys, "lower").to_list()
    from_polars = pl.DataFrame({"t": [raw]}).select(tenant_key_expr(pl.col("t"))).to_series().to_list()
    assert from_billing == [tenant_key(raw)] * 2
    assert from_polars == [tenant_key(raw)]
    key = tenant_key(raw)
    if key is not None:
        assert tenant_key(key) == key  # the key of a key is the key
        assert key == key.strip() and unicodedata.is_normalized("NFKC", key)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.none(), TEXT), max_size=20))
def test_the_vectorized_key_is_the_scalar_key(values):
    assert tenant_keys(pl.Series(values, dtype=pl.String)).to_list() == [tenant_key(v) for v in values]


# ASCII ids with Python's ASCII whitespace around and inside them (\x1c-\x1f are whitespace to
# `str.strip`, not to Polars' default strip): the vectorized ASCII path must agree with `tenant_key`.
ASCII_TEXT = st.text(st.characters(max_codepoint=127), max_size=12)
ASCII_PADDING = st.text(st.sampled_from(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"), max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.tuples(ASCII_PADDING, ASCII_TEXT, ASCII_PADDING).map("".join), TEXT), max_size=20),
    normalize=st.sampled_from(["lower", "none"]),
)
def test_the_vectorized_key_of_ascii_and_other_text_is_the_scalar_key(values, normalize):
    keys = tenant_keys(pl.Series(values, dtype=pl.String), normalize).to_list()
    assert keys == [tenant_key(v, normalize) for v in values]


def test_ascii_keys_are_lower_cased_and_stripped_of_pythons_whitespace():
    values = ["\x1c Acme-EU\x1f", "ACME-eu", " \x1e\t", "Ünïcode ", None]
    assert tenant_keys(pl.Series(values)).to_list() == ["acme-eu", "acme-eu", None, "ünïcode", None]
    assert tenant_keys(pl.Series(values), "none").to_list() == ["Acme-EU", "ACME-eu", None, "Ünïcode", None]


def test_a_customer_tagged_in_capitals_with_a_trailing_nbsp_keeps_its_direct_cost(tmp_path):
    """Before: billing lower-cased with DuckDB (final sigma lost) and trimmed ASCII only, so the cost
    landed in unknown_tenant and the customer looked cheaper than it is."""
    billing = focus_csv(tmp_path / "b.csv", [
        {"day": D, "cost": 7.5, "tenant": "ΟΔΥΣΣΕΥΣ\u00a0"},
        {"day": D, "cost": 2.5, "service": "NAT Gateway"},
    ])  # fmt: skip
    usage = write_usage_csv(tmp_path / "u.csv", [(D, "Οδυσσευς", "requests", 100.0)])
    people = write_customers_csv(tmp_path / "c.csv", [
        {"customer_id": "C1", "tenant_id": "οδυσσευς", "tier": "smb", "mrr": 100, "status": "active"},
    ])  # fmt: skip
    cfg = TenantConfig()
    bill = read_billing_files([billing], [D], cost_column="EffectiveCost", tenant=cfg, spread=True)
    use = read_usage_files([usage], [D], normalize=cfg.normalize)
    dim = customer_dimension(read_customer_files([people], normalize=cfg.normalize), [D], ["free"])
    out = allocate(bill, use, dim, [D], UnitcostConfig().resolved_pools(), "EffectiveCost")
    assert out.filter(pl.col("unallocated_reason").is_not_null()).is_empty()
    per_customer = out.group_by("customer_id").agg(pl.col("allocated_cost").sum()).rows()
    assert per_customer == [("C1", 10.0)]
    assert out.filter(pl.col("pool") == "direct")["allocated_cost"].sum() == 7.5
