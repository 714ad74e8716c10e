"""Where a bad value is, said so a person can find it: the file (or label) and the row."""

from pathlib import Path

import polars as pl

MAX_EXAMPLES = 3


Where = Path | str  # a file path, or a label such as s3://bucket/key.parquet


def is_csv(path: Where) -> bool:
    return str(path).lower().endswith((".csv", ".csv.gz"))


def row_ref(path: Where, row: int) -> str:
    """How a person finds the row: the data row number, and the line in a CSV (header is line 1)."""
    return f"row {row} (line {row + 1})" if is_csv(path) else f"row {row}"


def row_ref_expr(path: Where, row: pl.Expr) -> pl.Expr:
    """`row_ref` for a column of row numbers."""
    text = pl.lit("row ") + row.cast(pl.String)
    return text + pl.lit(" (line ") + (row + 1).cast(pl.String) + pl.lit(")") if is_csv(path) else text


def describe_bad_values(
    path: Where, frame: pl.DataFrame, bad: pl.Expr, column: str, what: str, fix: str
) -> list[str]:
    """One problem line per (file, column) with the first offending rows and their values."""
    rows = frame.filter(bad)
    if rows.is_empty():
        return []
    examples = ", ".join(
        f"{row_ref(path, r)} {v!r}"
        for r, v in rows.select("x_SourceRow", pl.col(column).cast(pl.String)).head(MAX_EXAMPLES).iter_rows()
    )
    more = f" and {rows.height - MAX_EXAMPLES} more" if rows.height > MAX_EXAMPLES else ""
    return [f"{path}: column {column} has {rows.height} {what}: {examples}{more}. {fix}"]

