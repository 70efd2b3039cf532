"""Consuming side of mailfleet: the worker that rate-limits, delivers over SMTP and settles."""
