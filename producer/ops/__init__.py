"""Operator commands: ``mailfleet stats``, ``suppression`` and ``dlq``."""
