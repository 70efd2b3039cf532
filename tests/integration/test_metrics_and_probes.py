"""The worker's /metrics, /healthz and /readyz, scraped over HTTP while jobs flow and while
Redis or the broker goes away."""

from __future__ import annotations

from pydantic import SecretStr

from mailfleet.producer.devtools.sink import SmtpSink, free_port
from mailfleet.producer.publisher import Producer
from mailfleet.shared.settings import Settings
from tests.integration.helpers import WorkerThread, http_get, make_job, wait_until
from tests.integration.outages import TcpProxy, own_redis
from tests.integration.relays import ScriptedReplies


def _sample(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


class TestMetricsEndpoint:
    def test_counters_move_as_jobs_flow(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
    ) -> None:
        """After 5 deliveries and one 550, /metrics counts them by outcome, reply code, reason."""
        port = free_port()
        replies.script("bad@example.org", "550 5.1.1 no such user")
        worker = WorkerThread(settings.model_copy(update={"metrics_port": port}))
        assert wait_until(lambda: http_get(port, "/healthz")[0] == 200, timeout=10)
        before = http_get(port, "/metrics")[1]
        assert (
            _sample(before, 'mailfleet_jobs_total{lane="transactional",outcome="delivered"}')
            is None
        )

        producer.publish_many([make_job(n) for n in range(5)])
        producer.publish(make_job(9, to=["bad@example.org"]))
        assert wait_until(lambda: smtp_server.count == 5, timeout=20)

        def scraped(name: str) -> float | None:
            return _sample(http_get(port, "/metrics")[1], name)

        delivered = 'mailfleet_jobs_total{lane="transactional",outcome="delivered"}'
        assert wait_until(lambda: scraped(delivered) == 5.0, timeout=5)
        assert wait_until(
            lambda: scraped('mailfleet_dead_letters_total{reason="permanent"}') == 1.0, timeout=5
        )
        assert 5.0 == scraped('mailfleet_smtp_replies_total{code="250"}')
        assert 1.0 == scraped('mailfleet_smtp_replies_total{code="550"}')
        assert 5.0 <= (scraped("mailfleet_send_seconds_count") or 0)
        assert 1.0 == scraped("mailfleet_ready")
        assert (200, "broker ok\nredis ok\nconsuming ok\n") == http_get(port, "/readyz")
        assert 0 == worker.stop()


class TestReadinessProbe:
    def test_readyz_fails_while_redis_is_away_and_recovers(self, settings: Settings) -> None:
        """Redis stopped: /readyz answers 503 naming redis, /healthz stays 200; back: 200."""
        port = free_port()
        with own_redis() as server:
            worker = WorkerThread(
                settings.model_copy(
                    update={"metrics_port": port, "redis_url": SecretStr(server.url)}
                )
            )
            assert wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=10)

            server.stop()
            assert wait_until(lambda: http_get(port, "/readyz")[0] == 503, timeout=10)
            assert "redis FAIL" in http_get(port, "/readyz")[1]
            assert 200 == http_get(port, "/healthz")[0]

            server.start()
            assert wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=10)
            assert 0 == worker.stop()

    def test_readyz_fails_while_the_broker_is_unreachable_and_the_worker_reconnects(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """Broker connections cut: 503 naming the broker; restored: reconnects and delivers."""
        port = free_port()
        upstream = settings.amqp_url.get_secret_value()
        proxy = TcpProxy("127.0.0.1", 5672)
        proxied = upstream.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")
        assert proxied != upstream, "the test broker must be the local one on port 5672"
        try:
            worker = WorkerThread(
                settings.model_copy(update={"metrics_port": port, "amqp_url": SecretStr(proxied)})
            )
            assert wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=10)

            proxy.cut()
            assert wait_until(lambda: http_get(port, "/readyz")[0] == 503, timeout=15)
            assert "broker FAIL" in http_get(port, "/readyz")[1]
            producer.publish_many([make_job(n) for n in range(10)])

            proxy.restore()
            assert wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=30)
            assert wait_until(lambda: smtp_server.count == 10, timeout=30)
            assert 0 == worker.stop()
        finally:
            proxy.close()
