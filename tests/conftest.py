import pytest

pytest_plugins = ["tests.fixtures.kafka"]
