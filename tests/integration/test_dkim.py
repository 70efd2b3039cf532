"""DKIM end to end: a worker signs at send time, and every message that reaches the relay
verifies with ``dkim.verify`` against a stub DNS serving the test's public keys."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pydantic import SecretStr

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.dkim_config import DkimKeyFile
from mailfleet.shared.settings import Settings
from tests.dkim_fixtures import StubDns, ed25519_key_file, rsa_key_file, signatures, verify_each
from tests.integration.helpers import WorkerThread, mailfleet_command, make_job, settings_env

DUAL, SINGLE, UNSIGNED = "dual.example", "single.example", "unsigned.example"


def key_settings(settings: Settings, tmp_path: Path, dns: StubDns) -> Settings:
    keys = {
        DUAL: [
            DkimKeyFile(selector="r1", key_file=rsa_key_file(tmp_path / "d.rsa", dns, "r1", DUAL)),
            DkimKeyFile(
                selector="e1", key_file=ed25519_key_file(tmp_path / "d.ed", dns, "e1", DUAL)
            ),
        ],
        SINGLE: [
            DkimKeyFile(selector="s1", key_file=rsa_key_file(tmp_path / "s.rsa", dns, "s1", SINGLE))
        ],
    }
    return settings.model_copy(update={"dkim_keys": keys})


class TestSigningAtSendTime:
    def test_every_signature_verifies_at_the_relay(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink, tmp_path: Path
    ) -> None:
        """30 jobs from three domains: dual-signed ones carry two verifying signatures,
        single-signed ones one, and the domain without a key none (and is counted)."""
        dns = StubDns()
        signing = key_settings(settings, tmp_path, dns)
        domains = [DUAL, SINGLE, UNSIGNED]
        jobs = [make_job(n, **{"from": f"Shop <shop@{domains[n % 3]}>"}) for n in range(30)]
        producer.publish_many(jobs)

        worker = WorkerThread(signing, burst=True)
        assert 0 == worker.join(timeout=60)

        assert 30 == smtp_server.count
        by_domain: dict[str, list[list[bool]]] = {domain: [] for domain in domains}
        for received in smtp_server.messages:
            sender = received.mail_from.rpartition("@")[2]
            by_domain[sender].append(verify_each(received.data, dns))
        assert [[True, True]] * 10 == by_domain[DUAL]
        assert [[True]] * 10 == by_domain[SINGLE]
        assert [[]] * 10 == by_domain[UNSIGNED]
        algorithms = {
            tags[b"a"]
            for received in smtp_server.messages
            if received.mail_from.endswith(DUAL)
            for tags in signatures(received.data)
        }
        assert {b"rsa-sha256", b"ed25519-sha256"} == algorithms
        registry = worker.worker.metrics.registry
        assert 10 == registry.get_sample_value("mailfleet_dkim_unsigned_total")


class TestStartUp:
    def test_a_short_key_stops_the_worker_with_one_line(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """A 1024-bit RSA key: the worker exits 1 before consuming, with one line naming the
        domain and the problem, and none of the key."""
        short = rsa_key_file(tmp_path / "short.pem", StubDns(), "s1", SINGLE, bits=1024)
        keys = {SINGLE: [DkimKeyFile(selector="s1", key_file=short)]}
        env = settings_env(settings.model_copy(update={"dkim_keys": keys}))
        result = subprocess.run(
            mailfleet_command("worker"),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 1 == result.returncode
        lines = result.stderr.strip().splitlines()
        assert [
            f"mailfleet worker: MAILFLEET_DKIM_KEYS: {SINGLE}: key file {short} "
            "is a 1024-bit RSA key; at least 2048 needed"
        ] == lines
        key_text = short.read_text().splitlines()[1]
        assert key_text not in result.stderr


class TestWithVerp:
    def test_signatures_still_verify_under_verp(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink, tmp_path: Path
    ) -> None:
        """With a bounce domain each recipient gets its own return path and X-Mailfleet-Ref
        header, added after signing: every copy still verifies, and a two-recipient job is
        two signed transactions."""
        dns = StubDns()
        signing = key_settings(settings, tmp_path, dns).model_copy(
            update={
                "bounce_domain": "bounces.dual.example",
                "bounce_secret": SecretStr("test-secret-0123456789"),
            }
        )
        producer.publish(
            make_job(1, **{"from": f"Shop <shop@{DUAL}>", "to": ["a@example.org", "b@example.org"]})
        )

        assert 0 == WorkerThread(signing, burst=True).join(timeout=60)

        assert 2 == smtp_server.count
        for received in smtp_server.messages:
            assert received.mail_from.endswith("@bounces.dual.example")
            assert b"X-Mailfleet-Ref:" in received.data
            assert [True, True] == verify_each(received.data, dns)
