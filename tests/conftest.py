"""Shared test configuration."""

# pytester drives the plugin tests (tests/plugin); pytest_plugins must live in a
# top-level conftest.
pytest_plugins = ["pytester"]
