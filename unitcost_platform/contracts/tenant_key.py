"""The tenant join key: one normalization for every source, so billing, usage and customers meet.

Billing tags are read by DuckDB's JSON reader, usage and customers by Polars; both hand the raw
values to `tenant_key`, so the rule is one Python function, not two engines' ideas of lower case
(DuckDB's `lower('ΟΔΥΣΣΕΥΣ')` and Polars' `to_lowercase` disagree on the final sigma, and neither
trims a non-breaking space). With `normalize: lower` a tenant id is NFKC-normalized, case-folded
(`str.casefold`: `ß` and `ss`, `ς` and `σ` meet) and trimmed of Unicode whitespace; with `none` it
is only trimmed. An id that is empty afterwards is no tenant. `tenant_keys` computes the keys of
ASCII ids in bulk with Polars, where the engines cannot disagree (ASCII is its own NFKC form and
case-folds to its lower case), and the others with `tenant_key`; a hypothesis test holds both equal.
"""

import unicodedata

import polars as pl

NORMALIZE_MODES = ("lower", "none")
# What `str.strip()` removes from ASCII text: Python's whitespace, which includes the separators
# \x1c-\x1f that Polars' default strip keeps.
ASCII_SPACE = "".join(chr(c) for c in range(128) if chr(c).isspace())


def tenant_key(value: str | None, normalize: str = "lower") -> str | None:
    """The join key of one raw tenant id (None when there is none)."""
    if value is None:
        return None
    if normalize == "lower":
        # NFKC and case folding can each undo the other's normal form in rare cases: repeat to a
        # fixed point (two passes in practice), so the key of a key is the key.
        text, previous = value, None
        while text != previous:
            previous = text
            text = unicodedata.normalize("NFKC", text).casefold().strip()
    else:
        text = value.strip()
    return text or None


def tenant_keys(values: pl.Series, normalize: str = "lower") -> pl.Series:
    """`tenant_key` of every value, computed once per distinct value (a day has few tenants)."""
    values = values.cast(pl.String)
    distinct = values.drop_nulls().unique()
    if distinct.is_empty():
        return pl.Series(values.name, [None] * values.len(), dtype=pl.String)
    # ASCII text (bytes == characters) is its own NFKC form and case-folds to its lower case, so its
    # key is computed by Polars; the rest (rare in practice) by `tenant_key` itself.
    ascii = distinct.str.len_bytes() == distinct.str.len_chars()
    plain = distinct.filter(ascii)
    folded = plain.str.to_lowercase() if normalize == "lower" else plain
    stripped = folded.str.strip_chars(ASCII_SPACE)
    other = distinct.filter(~ascii)
    mapping = pl.DataFrame(
        {
            "_raw": pl.concat([plain, other]),
            "_key": pl.concat([
                stripped.replace("", None),
                pl.Series([tenant_key(v, normalize) for v in other.to_list()], dtype=pl.String),
            ]),
        },
        schema={"_raw": pl.String, "_key": pl.String},
    )
    keyed = values.to_frame("_raw").join(mapping, on="_raw", how="left", maintain_order="left")
    return keyed["_key"].alias(values.name)


def tenant_key_expr(expr: pl.Expr, normalize: str = "lower") -> pl.Expr:
    """`tenant_key` as a Polars expression (elementwise)."""
    return expr.cast(pl.String).map_batches(
        lambda s: tenant_keys(s, normalize), return_dtype=pl.String, is_elementwise=True
    )
