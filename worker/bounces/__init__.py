"""Reading bounce (RFC 3464 DSN) and complaint (RFC 5965 ARF) reports: parse.py, pure, no I/O."""
