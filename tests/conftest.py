"""Fixtures that start real services (the Kafka broker, moto's S3 server) live in
tests/fixtures; a service that cannot start fails its tests, it never skips them."""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.s3"]
