"""Generated gRPC stubs of the fluxdepot public API (``fluxdepot.v1``); see ``proto/`` and ``make proto``."""
