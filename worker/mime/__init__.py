"""Building the RFC 5322 message of a job: build.py, and direct.py for the common case."""
