"""``mailfleet webhooks``: events POSTed to HTTP endpoints, signed, retried, dead-lettered."""
