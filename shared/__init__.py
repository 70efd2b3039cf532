"""What both sides of mailfleet agree on: settings, the job schema, names, topology, logging."""
