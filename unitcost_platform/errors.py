"""Errors a user can act on: each names where the problem is and how to fix it."""


class UnitcostError(Exception):
    """Base class for errors that carry a message written for the person running the pipeline."""


class ConfigError(UnitcostError):
    """The config file (unitcost.yaml) is missing, unreadable or invalid."""


class InputDataError(UnitcostError):
    """Input files or source responses are malformed; nothing of the partition is written."""

    def __init__(self, problems: list[str], *, what: str = "input data"):
        self.problems = list(problems)
        shown = self.problems[:20]
        more = len(self.problems) - len(shown)
        lines = [f"{len(self.problems)} problem(s) in {what}:"]
        lines += [f"  - {p}" for p in shown]
        if more:
            lines.append(f"  ... and {more} more of the same kind")
        super().__init__("\n".join(lines))
