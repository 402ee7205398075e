"""Root conftest: enables pytester for the plugin tests."""

pytest_plugins = ["pytester"]
