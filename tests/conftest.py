"""Shared fixtures live in plugin modules, one per area, so each can grow alone."""

pytest_plugins = [
    "tests.plugins.stores",
    "tests.plugins.servers",
    "tests.plugins.speech",
    "tests.plugins.apps",
]
