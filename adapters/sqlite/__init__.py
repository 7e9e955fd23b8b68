"""SQLite adapters: the durable default of the user store and of the delivery log, in one file on
a volume. The standard ``sqlite3`` module runs on one dedicated thread per database, so nothing
blocks the event loop and no extra dependency is needed."""
