"""Cluster forms of MAILFLEET_AMQP_URL and MAILFLEET_REDIS_URL, read without servers."""

from __future__ import annotations

import pytest

from mailfleet.shared.amqp_urls import failover_order, split_amqp_urls
from mailfleet.shared.errors import ConfigError
from mailfleet.shared.redis_urls import parse_hosts_url
from mailfleet.shared.settings import load_settings

A, B, C = (f"amqp://u:p@node{i}:5672/%2F" for i in (1, 2, 3))


class TestSplitAmqpUrls:
    """``split_amqp_urls``."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (A, [A]),
            (f"{A},{B}, {C} ", [A, B, C]),
            (f'["{A}", "{B}"]', [A, B]),
            (f"{A},,", [A]),
        ],
    )
    def test_one_url_a_comma_list_or_a_json_list(self, text: str, expected: list[str]) -> None:
        """Each form gives its URLs in the order written, blanks dropped."""
        assert expected == split_amqp_urls(text)

    @pytest.mark.parametrize(
        ("text", "problem"),
        [("", "names no URL"), ("[1, 2]", "list of strings"), ('["a"', "valid JSON")],
    )
    def test_bad_lists_are_refused(self, text: str, problem: str) -> None:
        """An empty or malformed list is one clear error."""
        with pytest.raises(ValueError, match=problem):
            split_amqp_urls(text)


class TestFailoverOrder:
    """``failover_order``."""

    def test_the_same_process_keeps_its_order(self) -> None:
        """One seed, one order, every time: a reconnect goes on to the next node."""
        urls = [f"amqp://n{i}/" for i in range(8)]
        assert failover_order(urls, seed=7) == failover_order(urls, seed=7)
        assert sorted(urls) == sorted(failover_order(urls, seed=7))

    def test_processes_spread_over_the_nodes(self) -> None:
        """Over 300 processes, each of three nodes comes first for a fair share of them."""
        firsts = [failover_order([A, B, C], seed=pid)[0] for pid in range(300)]
        assert all(60 < firsts.count(url) < 140 for url in (A, B, C))


class TestAmqpSettings:
    """MAILFLEET_AMQP_URL with several nodes."""

    def test_every_url_is_checked(self) -> None:
        """A bad second URL is refused, named redacted, its password never shown."""
        with pytest.raises(ConfigError, match=r"MAILFLEET_AMQP_URL: http://u:\*\*\*@x") as raised:
            load_settings(amqp_url=f"{A},http://u:secret@x/")
        assert "secret" not in str(raised.value)

    def test_amqp_urls_holds_every_node(self) -> None:
        """``amqp_urls`` is the list in this process's order."""
        settings = load_settings(amqp_url=f"{A},{B},{C}")
        assert sorted([A, B, C]) == sorted(settings.amqp_urls)
        assert settings.amqp_urls == settings.amqp_urls

    def test_quorum_size_defaults_to_three(self) -> None:
        """MAILFLEET_QUORUM_SIZE: 3 unless set, at least 1."""
        assert 3 == load_settings().quorum_size
        with pytest.raises(ConfigError, match="MAILFLEET_QUORUM_SIZE"):
            load_settings(quorum_size=0)


class TestRedisHostsUrl:
    """``parse_hosts_url``."""

    def test_sentinel_form(self) -> None:
        """Sentinels, service, db and the data nodes' password."""
        url = parse_hosts_url("redis+sentinel://:s%40cret@h1:26379,h2:26380/mymaster/2")
        assert (("h1", 26379), ("h2", 26380)) == url.hosts
        assert ("mymaster", 2) == (url.service, url.db)
        assert url.password is not None
        assert "s@cret" == url.password.get_secret_value()
        assert "s@cret" not in repr(url)

    def test_sentinel_defaults(self) -> None:
        """Port 26379 and db 0 unless given."""
        url = parse_hosts_url("redis+sentinel://h1/mymaster")
        assert ((("h1", 26379),), "mymaster", 0, None) == (
            url.hosts,
            url.service,
            url.db,
            url.password,
        )

    def test_cluster_form(self) -> None:
        """Any nodes of the cluster, 6379 unless given."""
        url = parse_hosts_url("redis+cluster://a:7000,b")
        assert (("a", 7000), ("b", 6379)) == url.hosts

    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            ("redis+sentinel://h1:26379", "service_name"),
            ("redis+sentinel://h1/m/x", "not a number"),
            ("redis+sentinel://h1:port/m", "host:port"),
            ("redis+cluster://a:7000/0", "no path"),
            ("redis+cluster://", "no host"),
        ],
    )
    def test_bad_forms_say_what_is_wrong(self, url: str, problem: str) -> None:
        """Each mistake gets its own message."""
        with pytest.raises(ValueError, match=problem):
            parse_hosts_url(url)

    def test_settings_refuse_a_bad_form_without_its_password(self) -> None:
        """MAILFLEET_REDIS_URL names the problem and masks the password."""
        with pytest.raises(ConfigError, match=r"MAILFLEET_REDIS_URL: .*service_name") as raised:
            load_settings(redis_url="redis+sentinel://:hunter2@h1:26379")
        assert "hunter2" not in str(raised.value)
