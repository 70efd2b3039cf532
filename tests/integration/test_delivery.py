"""End to end: published jobs arrive at the relay, once each, with the right content."""

from __future__ import annotations

import base64

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.settings import Settings
from tests.integration.helpers import DeliveryLedger, WorkerThread, make_job


class TestDelivery:
    def test_every_published_job_arrives_once_with_its_content(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """N confirmed jobs become N distinct emails with the right headers and bodies."""
        jobs = [make_job(n, lane="bulk" if n % 3 == 0 else "transactional") for n in range(60)]
        ledger = DeliveryLedger(confirmed=set(producer.publish_many(jobs)))

        assert 0 == WorkerThread(settings, burst=True).join(timeout=60)

        ledger.record_relay(smtp_server)
        assert set() == ledger.lost
        assert {} == ledger.duplicates
        assert 60 == smtp_server.count
        by_id = {message.job_id: message for message in smtp_server.messages}
        for job in jobs:
            message = by_id[job.id]
            parsed = message.parsed()
            assert job.subject == parsed["Subject"]
            assert "Sender <sender@example.com>" == parsed["From"]
            assert job.to[0] == parsed["To"]
            assert parsed["Message-ID"].startswith("<")
            assert parsed["Date"] is not None
            assert job.text == parsed.get_payload(decode=True).decode().rstrip("\r\n")
            assert "sender@example.com" == message.mail_from
            assert (job.to[0],) == message.rcpt_tos

    def test_cc_bcc_html_and_attachment_reach_the_relay(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """Bcc recipients get the envelope but no header; html and attachments survive."""
        payload = bytes(range(256)) * 40
        job = make_job(
            1,
            cc=["Carol <carol@example.net>"],
            bcc=["hidden@example.com"],
            html="<p>Hello <b>there</b></p>",
            attachments=[
                {
                    "filename": "data.bin",
                    "content_type": "application/octet-stream",
                    "content_base64": base64.b64encode(payload).decode(),
                }
            ],
            headers={"X-Campaign": "spring"},
        )
        producer.publish(job)

        assert 0 == WorkerThread(settings, burst=True).join(timeout=30)

        [message] = smtp_server.messages
        assert {"rcpt1@example.org", "carol@example.net", "hidden@example.com"} == set(
            message.rcpt_tos
        )
        parsed = message.parsed()
        assert parsed["Bcc"] is None
        assert "Carol <carol@example.net>" == parsed["Cc"]
        assert "spring" == parsed["X-Campaign"]
        parts = {part.get_content_type(): part for part in parsed.walk()}
        html = parts["text/html"].get_payload(decode=True).decode()
        assert "<p>Hello <b>there</b></p>" == html.rstrip("\r\n")
        attachment = parts["application/octet-stream"]
        assert "data.bin" == attachment.get_filename()
        assert payload == attachment.get_payload(decode=True)
