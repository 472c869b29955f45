"""The application layer: one use case per method, called by every face (gRPC, SFTP, HTTP, offline admin).

Each use case takes a ``Principal`` and plain arguments, returns frozen dataclasses and raises only
``engine.errors`` exceptions; its collaborators (the store, other services) are given to ``__init__``.
"""
