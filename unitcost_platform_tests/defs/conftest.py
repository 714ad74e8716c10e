"""Fixtures shared by the Dagster-level tests: the alerting environment (small SaaS, real instance,
local webhook receiver) serves the alert and the engineers'-view tests alike."""

from unitcost_platform_tests.defs.test_alerting import alerting  # noqa: F401 (a fixture)
