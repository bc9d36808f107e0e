"""The isolated worker processes (process.py, run as `python -m pthscope.worker`), the server's
client for them (client.py), the server's record of what the structure worker holds (store.py)
and the index that answers tree and table questions in the worker (index.py)."""


class InvalidRequest(Exception):
    """A request names something the file does not have (a path naming no node, a container where
    a tensor is needed); the message says which. Raised in the worker, and again in the server."""
