"""The server's worker processes: the pool that hands them requests, and the worker itself."""
