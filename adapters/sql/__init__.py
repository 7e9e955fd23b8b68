"""SQL shared by the SQLite and PostgreSQL adapters, where the two dialects agree."""
