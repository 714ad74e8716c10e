"""Money as people read it in messages: "$1,128" from $100 up, "$47.58" below, "n/a" for nothing."""


def money(x: float | None) -> str:
    return "n/a" if x is None else f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"
