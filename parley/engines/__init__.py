"""Speech and language engines: one small Protocol per kind, adapters behind it."""
