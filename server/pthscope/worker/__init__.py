"""The isolated parse worker (process.py, run as `python -m pthscope.worker`), the server's client
for it (client.py), the cache of parsed checkpoints (store.py) and the index that answers tree and
table questions (index.py)."""
