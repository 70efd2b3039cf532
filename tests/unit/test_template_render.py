"""Rendering in Jinja2's sandbox: strict variables, HTML escaping, caps, and the escapes
that CVE-2024-56326 and CVE-2025-27516 were about refused as security errors."""

from __future__ import annotations

import jinja2
import pytest

from mailfleet.shared.errors import InvalidJobError, RenderError
from mailfleet.shared.template_ref import TemplateSource
from mailfleet.shared.templates.render import CompiledTemplate, Renderer

WELCOME = TemplateSource(
    subject="Hello {{ name }}", text="Dear {{ name }}", html="<p>Dear {{ name }}</p>"
)


def render(text: str, **variables: object) -> str:
    renderer = Renderer()
    compiled = renderer.compile("t", TemplateSource(subject="s", text=text))
    rendered = renderer.render(compiled, variables)
    assert rendered.text is not None
    return rendered.text


class TestRender:
    def test_html_is_escaped_and_text_and_subject_are_not(self) -> None:
        renderer = Renderer()
        rendered = renderer.render(renderer.compile("w", WELCOME), {"name": "<b>&</b>"})

        assert "Hello <b>&</b>" == rendered.subject
        assert "Dear <b>&</b>" == rendered.text
        assert "<p>Dear &lt;b&gt;&amp;&lt;/b&gt;</p>" == rendered.html

    def test_parts_share_the_variables_but_not_what_they_set(self) -> None:
        """Jinja's globals work; a {% set %} in the subject is not seen by the text."""
        renderer = Renderer()
        source = TemplateSource(
            subject="{% set n = 3 %}{{ n }} of {{ total }}",
            text="{{ range(2)|list }} {{ n is defined }} {{ total }}",
        )
        rendered = renderer.render(renderer.compile("t", source), {"total": 9})

        assert ("3 of 9", "[0, 1] False 9") == (rendered.subject, rendered.text)

    def test_a_missing_variable_names_it(self) -> None:
        """StrictUndefined: never `Dear ,`."""
        with pytest.raises(RenderError, match="text: missing variable: 'name' is undefined"):
            render("Dear {{ name }},")

    def test_a_render_error_is_an_invalid_job(self) -> None:
        """The worker dead-letters it as invalid, with the template named."""
        with pytest.raises(InvalidJobError, match=r"^template: t: text: cannot render"):
            render("{{ 1 / 0 }}")

    def test_a_subject_with_a_line_break_is_refused(self) -> None:
        renderer = Renderer()
        compiled = renderer.compile("w", WELCOME)
        with pytest.raises(RenderError, match="subject: rendered with a line break"):
            renderer.render(compiled, {"name": "x\r\nBcc: victim@example.com"})

    def test_output_over_the_cap_is_refused_while_it_is_produced(self) -> None:
        renderer = Renderer(max_rendered_bytes=10_000)
        compiled = renderer.compile(
            "t", TemplateSource(subject="s", text="{% for i in range(99999) %}xxxxxxxx{% endfor %}")
        )
        with pytest.raises(RenderError, match="text: rendered output over the cap"):
            renderer.render(compiled, {})

    def test_a_syntax_error_names_part_and_line(self) -> None:
        with pytest.raises(RenderError, match="html: syntax error on line 2"):
            Renderer().compile("t", TemplateSource(subject="s", html="ok\n{% if %}"))


class TestSandbox:
    @pytest.mark.parametrize(
        "escape",
        [
            "{{ ''.__class__.__mro__ }}",
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{ '{0.__class__.__mro__}'|attr('format')(1) }}",
            "{{ ('{0.__globals__}'|attr('format'))(cycler.next) }}",
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "{{ lipsum.__globals__ }}",
            "{{ [].append(1) }}",
        ],
    )
    def test_escapes_raise_a_security_error(self, escape: str) -> None:
        with pytest.raises(RenderError, match="unsafe template code refused") as caught:
            render(escape)
        assert isinstance(caught.value.__cause__, jinja2.exceptions.SecurityError)

    def test_jinja2_is_at_least_3_1_6(self) -> None:
        """The release that fixed CVE-2025-27516 (and 3.1.5 CVE-2024-56326)."""
        major, minor, patch = (int(part) for part in jinja2.__version__.split(".")[:3])
        assert (major, minor, patch) >= (3, 1, 6)


class TestCache:
    def test_a_key_is_compiled_once(self) -> None:
        """Stored versions never change: the second job of one renders from the cache."""
        renderer = Renderer()
        builds: list[int] = []

        def build() -> CompiledTemplate:
            builds.append(1)
            return renderer.compile("w", WELCOME)

        first = renderer.cached(("stored", "w", 1), build)
        second = renderer.cached(("stored", "w", 1), build)

        assert first is second
        assert [1] == builds

    def test_an_inline_template_is_compiled_once_per_source(self) -> None:
        renderer = Renderer()
        assert renderer.inline(WELCOME) is renderer.inline(WELCOME.model_copy())
        assert renderer.inline(WELCOME) is not renderer.inline(
            TemplateSource(subject="x", text="y")
        )
