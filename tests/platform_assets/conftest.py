"""Fixtures of the code location's tests: the realistic shop built with dbt (shop_build)."""

from tests.platform_assets.shop_build import shop_build  # noqa: F401
