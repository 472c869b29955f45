"""fluxdepot's engine: from deposited bytes to an integration report (bring-your-own-I/O)."""

ENGINE_VERSION = "0.1.0"
