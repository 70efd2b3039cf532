"""Pure parts of the dashboard and the first run: binds, the chart, cookies, cursors,
filters, the send history's slots, heartbeats, the CLI's version and help."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr

from mailfleet.dashboard.bind import check_bind, is_loopback
from mailfleet.dashboard.chart import _nice_ceiling, rate_chart
from mailfleet.dashboard.pages.dlq_actions import decode_shown, encode_shown
from mailfleet.dashboard.security import session_value
from mailfleet.producer.devtools import own_servers
from mailfleet.producer.ops.dlq.filters import FilterError, build_selection
from mailfleet.producer.ops.dlq.paging import Cursor
from mailfleet.shared import cli
from mailfleet.shared.errors import ConfigError
from mailfleet.shared.names import Names
from mailfleet.shared.send_history import SLOT_SECONDS, RatePoint, record_commands, slot_of
from mailfleet.shared.worker_beats import WorkerBeat


class TestBind:
    @pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"])
    def test_loopback_addresses(self, host: str) -> None:
        assert is_loopback(host)

    @pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "example.org"])  # noqa: S104
    def test_other_addresses(self, host: str) -> None:
        assert not is_loopback(host)

    def test_beyond_loopback_needs_a_token(self) -> None:
        with pytest.raises(ConfigError, match="set MAILFLEET_DASHBOARD_TOKEN"):
            check_bind("0.0.0.0", None)  # noqa: S104
        with pytest.raises(ConfigError):
            check_bind("0.0.0.0", SecretStr(""))  # noqa: S104
        check_bind("0.0.0.0", SecretStr("t"))  # noqa: S104
        check_bind("127.0.0.1", None)


class TestChart:
    def test_the_axis_top_is_a_round_number_above_the_peak(self) -> None:
        assert [1, 2, 5, 10, 20, 500, 1000] == [
            _nice_ceiling(v) for v in (0, 1.5, 3, 7, 11, 420, 1000)
        ]

    def test_one_bar_per_slot_scaled_to_the_peak(self) -> None:
        points = [RatePoint(SLOT_SECONDS * n, n * 10) for n in range(90)]
        svg = str(rate_chart(points))
        assert 90 == svg.count("<rect")
        assert ">100/s<" in svg  # peak 89/s rounds up to 100


class TestSession:
    def test_the_cookie_proves_the_token_without_holding_it(self) -> None:
        value = session_value(SecretStr("hunter2"))
        assert "hunter2" not in value
        assert value == session_value(SecretStr("hunter2"))
        assert value != session_value(SecretStr("hunter3"))


class TestShown:
    def test_fingerprints_survive_the_confirm_form(self) -> None:
        shown = [("a", "2026-01-01T00:00:00+00:00", "permanent", "550", ("x@y.org",))] * 2
        assert {shown[0]: 2} == dict(decode_shown(encode_shown(shown)))

    @pytest.mark.parametrize("text", ["", "nonsense", "{}", '[["a", 1]]', "[[1,2,3,4,5]]"])
    def test_anything_else_is_no_letter(self, text: str) -> None:
        assert {} == dict(decode_shown(text))


class TestCursor:
    def test_a_cursor_round_trips_and_junk_is_the_first_page(self) -> None:
        cursor = Cursor("o", "h", "a")
        assert cursor == Cursor.decode(cursor.encode())
        assert Cursor.decode("%%%") is None
        assert Cursor.decode("") is None


class TestFilters:
    def test_the_dlq_filters_from_text(self) -> None:
        selection = build_selection(
            reasons=["permanent", ""], lanes=["bulk"], domains=["Example.ORG"], older_than="1h"
        )
        assert frozenset({"permanent"}) == selection.reasons
        assert frozenset({"example.org"}) == selection.domains
        assert 3600.0 == selection.older_than

    @pytest.mark.parametrize(
        ("kwargs", "problem"),
        [
            ({"reasons": ["nope"]}, "reason 'nope' is not one of"),
            ({"lanes": ["x"]}, "lane 'x' is not one of"),
            ({"older_than": "soon"}, "older-than:"),
        ],
    )
    def test_a_bad_value_names_the_filter(self, kwargs: dict[str, object], problem: str) -> None:
        with pytest.raises(FilterError, match=re.escape(problem)):
            build_selection(**kwargs)  # type: ignore[arg-type]


class TestSendHistory:
    def test_a_mark_counts_in_its_ten_second_slot(self) -> None:
        (incr, expire) = record_commands(Names("ns"), 3, 1_000_005.0)
        assert ("INCRBY", "{ns}:stats:delivered:100000", 3) == incr
        assert "EXPIRE" == expire[0]
        assert incr[1] == expire[1]
        assert slot_of(1_000_009.9) == slot_of(1_000_000.0) != slot_of(1_000_010.0)


class TestWorkerBeat:
    def test_a_beat_round_trips_and_junk_is_none(self) -> None:
        beat = WorkerBeat("h:1:abc", True, {"redis": True}, {"127.0.0.1:25": "open"}, 5.0)
        assert beat == WorkerBeat.from_json(beat.to_json())
        assert WorkerBeat.from_json(b"not json") is None
        assert WorkerBeat.from_json(b'{"worker": 1}') is None


class TestCommandLine:
    def test_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as stopped:
            cli.main(["--version"])
        assert 0 == stopped.value.code
        assert re.fullmatch(r"mailfleet \d+\.\d+\.\d+\n", capsys.readouterr().out)

    def test_help_lists_every_command(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            cli.main(["--help"])
        listed = capsys.readouterr().out
        for command in cli.COMMANDS:
            assert re.search(rf"^\s+{command}\b", listed, re.MULTILINE), command
        assert "dashboard" in cli.COMMANDS


class TestOwnServers:
    def test_without_docker_or_binaries_it_says_what_to_install_in_two_lines(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(own_servers, "_testcontainers_installed", lambda: False)
        monkeypatch.setattr(own_servers, "missing_binaries", lambda: ["rabbitmq-server"])
        with pytest.raises(own_servers.ServersMissing) as missing, own_servers.own_servers():
            pass
        lines = str(missing.value).splitlines()
        assert 2 == len(lines)
        assert "rabbitmq-server" in lines[0]
        assert "apt-get install -y rabbitmq-server redis-server" in lines[1]

    def test_free_ports_are_free(self) -> None:
        assert own_servers.free_port() > 1024
