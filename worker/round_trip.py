"""Moved to :mod:`mailfleet.shared.round_trip` (shared/recipients.py runs its calls too).

Only ``worker/limits/admission.py`` still imports ``ScriptCall`` from here; once it imports
``from mailfleet.shared.round_trip import ScriptCall``, delete this module."""

from __future__ import annotations

from mailfleet.shared.round_trip import ScriptCall

__all__ = ["ScriptCall"]
