"""The embedded adapters: everything in one process with no server to run (the quick start and
the tests). The queue keeps its journal in a file, the storage a local folder; the user store
and delivery log live in memory; the fake generator and the identity translator stand in for
the models."""
