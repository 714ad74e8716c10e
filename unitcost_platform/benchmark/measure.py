"""Wall time and peak resident memory of a piece of work, inside the process that does it.

Peak memory is the kernel's high-water mark (VmHWM), reset before each stage through
/proc/self/clear_refs, so a stage's figure is the most the process held while it ran (its inputs
included, as a Dagster step holds the inputs it loaded). Where the reset is not available the
figure is the process's peak so far, and `per_stage` says so.
"""

import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mib(field: str) -> float | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Start a new high-water mark at the current resident size; False where the OS has no such reset."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_mib() -> float:
    hwm = _status_mib("VmHWM")
    if hwm is not None:
        return hwm
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@dataclass
class Figure:
    stage: str
    seconds: float
    rows: int
    peak_mib: float
    per_stage: bool

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def measured(stage: str, rows: int, figures: list[Figure]) -> Iterator[None]:
    """Time the block and record its peak memory as a Figure."""
    per_stage = reset_peak()
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    figures.append(Figure(stage, seconds, rows, peak_mib(), per_stage))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start
