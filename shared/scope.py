"""The scope of a suppression: everything, or one list of one sender domain.

A bulk unsubscribe suppresses an address only for ``(sender domain, list)``: the job's
``list`` field, or its lane's name when it has none. So unsubscribing from a newsletter never
stops that person's password-reset mail (list ``transactional``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailfleet.shared.addresses import domain_of
from mailfleet.shared.job import EmailJob

EVERYTHING = "*"
_SEPARATOR = "\n"  # no address, domain or list name holds a line break


@dataclass(frozen=True)
class Scope:
    sender_domain: str
    list_name: str

    @classmethod
    def of(cls, job: EmailJob) -> Scope:
        return cls((domain_of(job.from_) or "").lower(), job.list_ or job.lane.value)

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``example.com/news``, as ``mailfleet suppression`` spells a scope."""
        domain, slash, list_name = text.partition("/")
        if not slash or not domain or not list_name or _SEPARATOR in text:
            raise ValueError(f"{text!r} is not a scope like example.com/newsletter")
        return cls(domain.lower(), list_name)

    @property
    def suffix(self) -> str:
        """What follows the address in a field of the scoped suppression hash."""
        return f"{_SEPARATOR}{self.sender_domain}{_SEPARATOR}{self.list_name}"

    def field(self, address: str) -> str:
        return f"{address.lower()}{self.suffix}"

    def __str__(self) -> str:
        return f"{self.sender_domain}/{self.list_name}"


def split_field(field: str) -> tuple[str, Scope]:
    """The address and scope of a field of the scoped hash (:meth:`Scope.field`)."""
    address, domain, list_name = field.split(_SEPARATOR, 2)
    return address, Scope(domain, list_name)
