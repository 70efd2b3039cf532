"""Templates: stored with immutable versions in Redis, rendered in Jinja2's sandbox."""
