import pytest

from unitcost_platform.transforms.allocation import allocate as polars_allocate
from unitcost_platform_tests.helpers import warehouse_allocate


@pytest.fixture(params=["polars", "warehouse"])
def allocate(request):
    """The allocation under test: `allocate` on frames, or its SQL twin run by DuckDB over tables
    (what the allocated_cost asset runs); the hand-worked cases hold for both."""
    return polars_allocate if request.param == "polars" else warehouse_allocate
