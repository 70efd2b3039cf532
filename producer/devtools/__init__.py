"""Tools for trying mailfleet out and testing it: the SMTP sink, the demo, namespace removal.

The sink and the demo need aiosmtpd; nothing here is imported by publishing or operating.
"""
