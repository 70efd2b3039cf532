"""The one exception tree of mailfleet.

Third-party errors (pika, kombu/amqp, redis, smtplib, pydantic) are translated into these
at the boundary with ``raise ... from exc``, so callers never catch a foreign type::

    MailfleetError
    ├── ConfigError            a setting has a bad value (names the variable)
    ├── InvalidJobError        a job does not satisfy the wire contract (names the field)
    │   └── RenderError        its template does not render (names the variable or problem)
    ├── TemplateNotFound       no stored template of that name or version
    ├── BrokerError            RabbitMQ trouble
    │   ├── BrokerUnavailable  cannot connect / connection lost
    │   └── PublishError       the broker refused a publish
    │       ├── PublishNacked  nack from the broker (e.g. queue overflow)
    │       └── Unroutable     mandatory message matched no queue
    └── RedisUnavailable       Redis cannot be reached; senders fail closed
"""

from __future__ import annotations


class MailfleetError(Exception):
    """Base of every error mailfleet raises on purpose."""


class ConfigError(MailfleetError):
    """A setting has a bad value; the message names the environment variable."""


class InvalidJobError(MailfleetError):
    """A job broke the wire contract; ``problems`` lists ``(field, problem)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in problems))


class RenderError(InvalidJobError):
    """A job's template failed to render: a missing variable, a syntax or sandbox error, or
    output over the cap; never sent half-rendered."""

    def __init__(self, template: str, problem: str) -> None:
        self.template = template
        self.problem = problem
        super().__init__([("template", f"{template}: {problem}")])


class TemplateNotFound(MailfleetError):
    """The template store has no such template, or no such version of it."""


class BrokerError(MailfleetError):
    """RabbitMQ did not do what we asked."""


class BrokerUnavailable(BrokerError):
    """The broker cannot be reached, or the connection dropped and could not be re-made."""


class PublishError(BrokerError):
    """The broker refused a publish; ``message_ids`` names the jobs affected."""

    def __init__(self, message: str, message_ids: list[str]) -> None:
        self.message_ids = message_ids
        super().__init__(
            f"{message}: {', '.join(message_ids[:5])}" + (" ..." if len(message_ids) > 5 else "")
        )


class PublishNacked(PublishError):
    """The broker nacked the publish; the messages are not stored."""


class Unroutable(PublishError):
    """A mandatory publish matched no queue (is the topology declared?)."""


class RedisUnavailable(MailfleetError):
    """Redis cannot be reached; whoever needs it must stop sending (fail closed)."""
