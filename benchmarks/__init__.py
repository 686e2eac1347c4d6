"""Side-by-side benchmark of the tasks worker: `python -m benchmarks [--quick]`.

One run measures a bare redis-py consumer loop (the floor), the straightforward
FastStream port (the peer) and the worker on SQLite and PostgreSQL, on the same
Redis and machine, and prints ratios between them.
"""
