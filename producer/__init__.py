"""Publishing side of mailfleet: the Producer API, ``mailfleet publish``, ops tools."""

from mailfleet.producer.publisher import Producer

__all__ = ["Producer"]
