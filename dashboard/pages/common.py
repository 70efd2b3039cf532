"""What every page needs: the settings and the renderer, kept on the app's state."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from mailfleet.dashboard.rendering import Renderer
from mailfleet.dashboard.seen_letters import SeenLetters
from mailfleet.shared.settings import Settings


@dataclass(frozen=True)
class Context:
    settings: Settings
    renderer: Renderer
    seen: SeenLetters = field(default_factory=SeenLetters)  # letters the table showed lately


def context_of(request: Request) -> Context:
    context: Context = request.app.state.context
    return context
