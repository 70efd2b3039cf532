"""SMTP delivery: the pooled transport, opening connections, pipelining, replies, relays."""
