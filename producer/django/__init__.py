"""The Django email backend: ``EMAIL_BACKEND = "mailfleet.producer.django.EmailBackend"``.

Needs the ``django`` extra; ``import mailfleet.producer`` does not import this package.
"""

from mailfleet.producer.django.backend import EmailBackend

__all__ = ["EmailBackend"]
