"""``MAILFLEET_AMQP_URL`` as one URL or the nodes of a RabbitMQ cluster.

Several URLs come as a comma list (``amqp://a:5672/,amqp://b:5672/``) or a JSON list. Each
process tries them in its own order, a shuffle seeded by its process id, and keeps that order
for every reconnect: a fleet spreads over the nodes, and one process goes back to the next
node of its list when its node dies, not to a random one that may be the dead node again.
"""

from __future__ import annotations

import json
import os
import random


def split_amqp_urls(text: str) -> list[str]:
    """The URLs of ``text``: a JSON list, a comma list or one URL (blanks dropped).

    A comma inside a password must be percent-encoded (``%2C``), as any special character."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError:
            raise ValueError("is not a valid JSON list of URLs") from None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValueError("must be a JSON list of strings")
        urls = [item.strip() for item in items]
    else:
        urls = [item.strip() for item in stripped.split(",")]
    urls = [url for url in urls if url]
    if not urls:
        raise ValueError("names no URL")
    return urls


def failover_order(urls: list[str], seed: int | None = None) -> list[str]:
    """``urls`` in this process's order (``seed`` defaults to the process id)."""
    ordered = list(urls)
    random.Random(os.getpid() if seed is None else seed).shuffle(ordered)
    return ordered
