"""The dead-letter queue ``{ns}.dead`` for operators: ``mailfleet dlq`` and what it runs on."""
