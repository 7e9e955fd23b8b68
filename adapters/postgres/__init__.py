"""PostgreSQL adapters (asyncpg): the user store and the delivery log, shared by bot instances on
any number of hosts."""

from adapters.postgres.db import DatabaseUnavailable, PostgresDatabase
from adapters.postgres.delivery_log import PostgresDeliveryLog
from adapters.postgres.user_store import PostgresUserStore

__all__ = ["DatabaseUnavailable", "PostgresDatabase", "PostgresDeliveryLog", "PostgresUserStore"]
