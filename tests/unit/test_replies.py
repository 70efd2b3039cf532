"""Classifying SMTP replies: RFC 5321 basic code, RFC 3463 enhanced code, provider quirks."""

from __future__ import annotations

import pytest

from mailfleet.worker.smtp.replies import Outcome, SmtpReply, Verdict, classify

DELIVERED = Verdict(Outcome.DELIVERED)
TRANSIENT = Verdict(Outcome.TRANSIENT)
THROTTLED = Verdict(Outcome.THROTTLED)
PERMANENT = Verdict(Outcome.PERMANENT)
BAD_MAILBOX = Verdict(Outcome.PERMANENT, bad_mailbox=True)


class TestClassify:
    """``classify``: what to do with a recipient after the relay's reply."""

    @pytest.mark.parametrize(
        ("code", "text", "verdict"),
        [
            # 2xx: delivered.
            (250, "2.0.0 OK: queued as 4F1A2", DELIVERED),
            (250, "OK", DELIVERED),
            (251, "User not local; will forward", DELIVERED),
            # 421: the server is closing or throttling us.
            (421, "Service not available, closing transmission channel", THROTTLED),
            (421, "4.3.2 System not accepting network messages", THROTTLED),
            # Other 4xx: transient.
            (450, "4.2.1 Mailbox busy", TRANSIENT),
            (450, "Requested mail action not taken: mailbox unavailable", TRANSIENT),
            (451, "4.3.0 Local error in processing", TRANSIENT),
            (452, "4.3.1 Insufficient system storage", TRANSIENT),
            (452, "Requested action not taken: insufficient system storage", TRANSIENT),
            # 4.7.x: a policy deferral, i.e. throttling.
            (450, "4.7.1 Greylisted, please come back later", THROTTLED),
            (451, "4.7.0 Temporary server error", THROTTLED),
            (450, "4.7.25 Client host rejected: cannot find your hostname", THROTTLED),
            (421, "4.7.28 Our system has detected an unusual rate of mail", THROTTLED),
            # 5xx about the mailbox: permanent, and the address is bad.
            (550, "5.1.1 The email account that you tried to reach does not exist", BAD_MAILBOX),
            (550, "5.1.1", BAD_MAILBOX),
            (550, "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found", BAD_MAILBOX),
            (553, "5.1.3 Bad recipient address syntax", BAD_MAILBOX),
            (551, "5.1.6 Mailbox has moved", BAD_MAILBOX),
            (550, "5.2.1 The email account that you tried to reach is disabled", BAD_MAILBOX),
            # 5xx not about the mailbox: permanent, the address stays usable.
            (552, "5.2.2 Mailbox full", PERMANENT),
            (554, "5.7.1 Message rejected as spam", PERMANENT),
            (550, "5.7.1 Recipient address rejected: Access denied", PERMANENT),
            (550, "Requested action not taken: mailbox unavailable", PERMANENT),
            (554, "Transaction failed", PERMANENT),
            (552, "5.3.4 Message size exceeds fixed maximum message size", PERMANENT),
        ],
    )
    def test_by_code(self, code: int, text: str, verdict: Verdict) -> None:
        """The basic and enhanced code decide the outcome."""
        assert verdict == classify(SmtpReply(code, text))

    @pytest.mark.parametrize(
        ("code", "text", "verdict"),
        [
            (550, "4.2.1 The user you are trying to contact is receiving mail too fast", TRANSIENT),
            (550, "4.3.0 Temporary failure", TRANSIENT),
            (554, "4.7.1 Deferred by policy", THROTTLED),
            (250, "2.1.5 Recipient OK", DELIVERED),
        ],
    )
    def test_enhanced_code_wins(self, code: int, text: str, verdict: Verdict) -> None:
        """An enhanced code of another class overrides the basic code."""
        assert verdict == classify(SmtpReply(code, text))

    @pytest.mark.parametrize(
        ("code", "text"),
        [
            (550, "5.7.1 Message rejected, please try again later"),
            (554, "5.7.1 IP frequency limited"),
            (550, "Connection frequency limited. http://service.mail.qq.com/"),
            (554, "IP frequency limited"),
            (550, "5.7.1 Our system has detected an unusual rate of mail; rate limited"),
            (550, "5.4.1 Too many messages from your IP, please slow down"),
            (452, "4.5.3 Too many recipients"),
            (554, "5.7.0 Too many connections from your host"),
            (550, "Message temporarily deferred"),
            (550, "5.7.1 Sending throttled"),
        ],
    )
    def test_provider_texts_mean_throttled(self, code: int, text: str) -> None:
        """A reply that says to slow down or retry is throttling, whatever its code."""
        assert THROTTLED == classify(SmtpReply(code, text))

    @pytest.mark.parametrize(
        "text",
        [
            "ConnectionRefusedError: [Errno 111] Connection refused",
            "TimeoutError: timed out",
            "SMTPServerDisconnected: Connection unexpectedly closed",
            "",
        ],
    )
    def test_no_reply_is_transient(self, text: str) -> None:
        """Code 0 (refused, timeout, dropped connection) is transient."""
        assert TRANSIENT == classify(SmtpReply(0, text))

    @pytest.mark.parametrize(
        ("code", "text"),
        [
            (550, "5.1.2 Host unknown: example.invalid"),
            (550, "5.1.2 Domain not found"),
            (553, "no such domain"),
            (550, "Domain does not exist"),
            (551, "recipient domain example.invalid: NXDOMAIN"),
        ],
    )
    def test_nonexistent_domain_is_bad_mailbox(self, code: int, text: str) -> None:
        """A recipient domain that does not exist is permanent and a bad address."""
        assert BAD_MAILBOX == classify(SmtpReply(code, text))

    def test_out_of_place_code_is_transient(self) -> None:
        """A 3xx where a final reply was due is a protocol hiccup: transient."""
        assert TRANSIENT == classify(SmtpReply(354, "Start mail input"))


class TestSmtpReply:
    """``SmtpReply``: the enhanced code and how a reply is shown."""

    @pytest.mark.parametrize(
        ("text", "enhanced"),
        [
            ("5.1.1 User unknown", (5, 1, 1)),
            ("  4.7.0 Try later", (4, 7, 0)),
            ("5.1.10 Recipient not found", (5, 1, 10)),
            ("2.0.0", (2, 0, 0)),
            ("User unknown", None),
            ("5.1 User unknown", None),
            ("3.1.1 Not a class", None),
            ("5.1.1234 too long", None),
        ],
    )
    def test_enhanced(self, text: str, enhanced: tuple[int, int, int] | None) -> None:
        """The enhanced code is read from the start of the text, classes 2, 4 and 5 only."""
        assert enhanced == SmtpReply(550, text).enhanced

    @pytest.mark.parametrize(
        ("reply", "shown"),
        [
            (SmtpReply(550, "5.1.1 User unknown"), "550 5.1.1 User unknown"),
            (SmtpReply(0, "TimeoutError: timed out"), "TimeoutError: timed out"),
        ],
    )
    def test_str(self, reply: SmtpReply, shown: str) -> None:
        """A reply shows as code and text; no reply shows just its text."""
        assert shown == str(reply)
