"""Rows of a table staged in Parquet parts instead of one frame: how a large day reaches the warehouse.

A reader adds each file's rows as a part (`Stage.add`) and lets it go, so no process ever holds a
day of line items; the IO manager inserts the parts in one statement inside the transaction that
replaces the day (DuckDB reads the files itself; Snowflake loads them part by part into a staging
table), then deletes them. A failed read or write removes the parts and writes nothing.

Each part leaves a small summary behind (`summarize`, e.g. cost per day, source and currency), so
checks across parts (a day mixing currencies) and the asset's metadata need no second read.
"""

import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl


@dataclass
class StagedRows:
    """The parts of a table's new rows, ready to insert; `remove()` deletes them."""

    directory: Path | None
    parts: list[Path]
    schema: dict[str, pl.DataType]
    rows: int

    def frames(self) -> Iterator[pl.DataFrame]:
        """The parts one at a time."""
        for part in self.parts:
            yield pl.read_parquet(part)

    def collect(self) -> pl.DataFrame:
        """Every row in one frame: for tests and small days only."""
        if not self.parts:
            return pl.DataFrame(schema=self.schema)
        return pl.concat(list(self.frames()), how="vertical")

    def remove(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class Stage:
    """Collects parts of rows with `schema` in a temporary directory (removed if the stage fails)."""

    schema: dict[str, pl.DataType]
    summarize: Callable[[pl.DataFrame], pl.DataFrame]
    prefix: str = "unitcost-stage-"
    directory: Path | None = None
    parts: list[Path] = field(default_factory=list)
    summaries: list[pl.DataFrame] = field(default_factory=list)
    rows: int = 0

    def add(self, frame: pl.DataFrame) -> Path | None:
        """Write `frame` (already in `schema`) as a part; an empty frame adds nothing."""
        self.summaries.append(self.summarize(frame))
        if frame.is_empty():
            return None
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix=self.prefix))
        path = self.directory / f"part-{len(self.parts):05d}.parquet"
        # lz4: the part is read once, right away; writing and reading it is as fast as uncompressed, a third of the bytes.
        frame.write_parquet(path, compression="lz4", statistics=False)
        self.parts.append(path)
        self.rows += frame.height
        return path

    def summary(self) -> pl.DataFrame:
        return pl.concat(self.summaries, how="vertical") if self.summaries else self.summarize(pl.DataFrame(schema=self.schema))

    def finish(self) -> StagedRows:
        return StagedRows(self.directory, list(self.parts), dict(self.schema), self.rows)

    def remove(self) -> None:
        self.finish().remove()

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.remove()
