"""The email job schema (the README's "The job"): every rule of the wire contract."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailfleet.shared.errors import InvalidJobError
from mailfleet.shared.job import (
    DEFAULT_LIMITS,
    JOB_TYPE,
    EmailJob,
    JobLimits,
    Lane,
    parse_job,
    parse_message,
)

# Characters other than CR and LF that Python's email package treats as line breaks when it
# writes a header (str.splitlines): a value containing one becomes two header lines.
EMAIL_LINE_BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]


def job_data(**changes: Any) -> dict[str, Any]:
    """A valid job on the wire, with ``changes`` applied (``from`` is ``from_`` here)."""
    data: dict[str, Any] = {
        "id": "job-1",
        "from": "sender@example.org",
        "to": ["ann@example.org"],
        "subject": "Hello",
        "text": "Hi Ann",
    }
    if "from_" in changes:
        data["from"] = changes.pop("from_")
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def problem_fields(data: dict[str, Any], limits: JobLimits = DEFAULT_LIMITS) -> list[str]:
    """The fields ``parse_job`` names for ``data``, which must be refused."""
    with pytest.raises(InvalidJobError) as caught:
        parse_job(data, limits)
    return [field for field, _ in caught.value.problems]


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


class TestId:
    """``id``: the idempotency key."""

    def test_generated_uuid_when_missing(self) -> None:
        """A job without an id gets a fresh UUID."""
        job = parse_job(job_data(id=None))
        assert str(uuid.UUID(job.id)) == job.id

    def test_generated_ids_differ(self) -> None:
        """Two jobs without an id get different ids."""
        first, second = parse_job(job_data(id=None)), parse_job(job_data(id=None))
        assert first.id != second.id

    @pytest.mark.parametrize(
        "job_id",
        ["a", "order-42/confirmation", "x" * 128, "!~#$%&'*+-./:;<=>?@[]^_`{|}"],
    )
    def test_printable_ids_kept(self, job_id: str) -> None:
        """An id of 1-128 printable characters is kept as given."""
        assert job_id == parse_job(job_data(id=job_id)).id

    @pytest.mark.parametrize(
        "job_id",
        ["", "x" * 129, "has space", "tab\there", "line\nbreak", "trailing\n", "nul\0", "é"],
    )
    def test_bad_ids_refused(self, job_id: str) -> None:
        """An empty, too long, spaced, non-printable or non-ASCII id is refused."""
        assert ["id"] == problem_fields(job_data(id=job_id))


class TestAddresses:
    """``from``, ``to``, ``cc``, ``bcc``, ``reply_to``."""

    def test_display_names_allowed(self) -> None:
        """Addresses may carry display names, quoted or not."""
        job = parse_job(
            job_data(
                from_="Shop <shop@example.org>",
                to=['"Doe, John" <john@example.org>'],
                cc=["Zoë <zoe@example.org>"],
                reply_to="Help Desk <help@example.org>",
            )
        )
        assert ["john@example.org", "zoe@example.org"] == job.recipients()

    def test_single_to_becomes_list(self) -> None:
        """A single string for ``to`` is a list of one address."""
        assert ["ann@example.org"] == parse_job(job_data(to="ann@example.org")).to

    @pytest.mark.parametrize("field", ["cc", "bcc"])
    def test_single_cc_bcc_become_lists(self, field: str) -> None:
        """A single string for ``cc`` or ``bcc`` is a list of one address too."""
        job = parse_job(job_data(**{field: "bob@example.org"}))
        assert ["bob@example.org"] == getattr(job, field)

    def test_lists_kept_in_order(self) -> None:
        """Address lists keep their order."""
        to = ["a@example.org", "b@example.org", "c@example.org"]
        assert to == parse_job(job_data(to=to)).to

    def test_python_name_for_from(self) -> None:
        """In Python the sender is ``from_``; building by that name works too."""
        job = EmailJob(from_="sender@example.org", to=["ann@example.org"], text="x")
        assert "sender@example.org" == job.from_

    @pytest.mark.parametrize(
        ("field", "value", "location"),
        [
            pytest.param("from", "not-an-address", "from", id="from"),
            pytest.param("from", "", "from", id="empty-from"),
            pytest.param("to", ["ann@example.org", "nobody"], "to.1", id="second-to"),
            pytest.param("to", "a@example.org, b@example.org", "to.0", id="two-in-one-to"),
            pytest.param("cc", ["@example.org"], "cc.0", id="cc"),
            pytest.param("bcc", ["bob@"], "bcc.0", id="bcc"),
            pytest.param("reply_to", "reply at example.org", "reply_to", id="reply-to"),
        ],
    )
    def test_invalid_address_names_its_field(self, field: str, value: Any, location: str) -> None:
        """An invalid address is refused, naming the field and list position."""
        assert [location] == problem_fields({**job_data(), field: value})

    @pytest.mark.parametrize("field", ["from", "reply_to"])
    def test_one_address_only(self, field: str) -> None:
        """``from`` and ``reply_to`` take one address, not a list."""
        assert [field] == problem_fields({**job_data(), field: ["a@example.org"]})


class TestRecipients:
    """At least one recipient, and a cap on how many."""

    def test_at_least_one_recipient(self) -> None:
        """A job with no recipient in to, cc or bcc is refused."""
        assert ["job"] == problem_fields(job_data(to=[]))

    @pytest.mark.parametrize("field", ["to", "cc", "bcc"])
    def test_any_one_field_is_enough(self, field: str) -> None:
        """One recipient in any of to, cc or bcc is enough."""
        job = parse_job({**job_data(to=None), field: ["bob@example.org"]})
        assert ["bob@example.org"] == job.recipients()

    def test_default_cap_allows_100(self) -> None:
        """The default cap allows 100 recipients across to, cc and bcc."""
        to = [f"to{i}@example.org" for i in range(50)]
        cc = [f"cc{i}@example.org" for i in range(25)]
        bcc = [f"bcc{i}@example.org" for i in range(25)]
        assert 100 == len(parse_job(job_data(to=to, cc=cc, bcc=bcc)).recipients())

    def test_default_cap_refuses_101(self) -> None:
        """The 101st recipient, counted across to, cc and bcc, is over the default cap."""
        to = [f"to{i}@example.org" for i in range(50)]
        cc = [f"cc{i}@example.org" for i in range(50)]
        assert ["job"] == problem_fields(job_data(to=to, cc=cc, bcc=["bcc@example.org"]))

    def test_custom_cap(self) -> None:
        """A deployment's ``JobLimits`` sets its own cap."""
        limits = JobLimits(max_recipients=2)
        two = [f"r{i}@example.org" for i in range(2)]
        assert two == parse_job(job_data(to=two), limits).to
        assert ["job"] == problem_fields(job_data(to=[*two, "r2@example.org"]), limits)

    def test_recipients_are_bare_and_deduplicated(self) -> None:
        """Envelope recipients are bare addresses, once each, in to, cc, bcc order."""
        job = parse_job(
            job_data(
                to=["Ann <ann@example.org>"],
                cc=["bob@example.org", "ann@example.org"],
                bcc=["Carl <carl@example.org>", "Bob <bob@example.org>"],
            )
        )
        assert ["ann@example.org", "bob@example.org", "carl@example.org"] == job.recipients()


class TestSubjectAndBody:
    """``subject``, ``text`` and ``html``."""

    def test_non_ascii_subject_kept(self) -> None:
        """A subject may hold any one-line text."""
        assert "Grüße — 日本語" == parse_job(job_data(subject="Grüße — 日本語")).subject

    @pytest.mark.parametrize("subject", ["a\rb", "a\nb", "a\r\nb", "trailing\n", "nul\0"])
    def test_subject_without_line_breaks(self, subject: str) -> None:
        """A subject with CR, LF or NUL is refused."""
        assert ["subject"] == problem_fields(job_data(subject=subject))

    @pytest.mark.parametrize(("text", "html"), [("t", None), (None, "<p>h</p>"), ("t", "<p>h</p>")])
    def test_text_html_or_both(self, text: str | None, html: str | None) -> None:
        """A job with text, html or both is accepted as given."""
        job = parse_job(job_data(text=text, html=html))
        assert (text, html) == (job.text, job.html)

    def test_needs_a_body(self) -> None:
        """A job with neither text nor html is refused."""
        assert ["job"] == problem_fields(job_data(text=None))

    def test_body_may_have_line_breaks(self) -> None:
        """The body, unlike headers, may span lines."""
        assert "line 1\r\nline 2\n" == parse_job(job_data(text="line 1\r\nline 2\n")).text


class TestExtraHeaders:
    """``headers``: extra header fields."""

    def test_extra_headers_kept(self) -> None:
        """Well-formed extra headers are kept as given."""
        headers = {"X-Campaign": "spring", "List-Unsubscribe": "<mailto:u@example.org>"}
        assert headers == parse_job(job_data(headers=headers)).headers

    @pytest.mark.parametrize(
        "name",
        ["", "X Campaign", "X-Campaign:", "Bcc: x", "X-Ümlaut", "X-Tab\t", "X-Line\r\n", "X-A\n"],
    )
    def test_field_name_rfc5322(self, name: str) -> None:
        """A name that is not printable ASCII without space and colon is refused."""
        assert ["headers"] == problem_fields(job_data(headers={name: "v"}))

    @pytest.mark.parametrize(
        "name",
        [
            "From",
            "To",
            "Cc",
            "Bcc",
            "Subject",
            "Reply-To",
            "Sender",
            "Date",
            "Message-ID",
            "MIME-Version",
            "Content-Type",
            "Content-Transfer-Encoding",
            "Content-Disposition",
            "bcc",
            "BCC",
            "content-type",
            "mime-VERSION",
            "message-id",
            "X-Mailfleet-Id",
        ],
    )
    def test_protected_headers_refused(self, name: str) -> None:
        """Headers the job or its MIME structure sets may not be given, in any case."""
        assert ["headers"] == problem_fields(job_data(headers={name: "x@example.org"}))

    @pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\r\nBcc: evil@example.org", "nul\0"])
    def test_values_without_line_breaks(self, value: str) -> None:
        """A header value with CR, LF or NUL is refused."""
        assert ["headers"] == problem_fields(job_data(headers={"X-Campaign": value}))


class TestHeaderInjection:
    """Attempts to smuggle a header (typically a Bcc) into the message are refused."""

    EVIL = "Bcc: victim@example.org"

    @pytest.mark.parametrize("separator", ["\r\n", "\n", "\r", *EMAIL_LINE_BREAKS])
    def test_in_subject(self, separator: str) -> None:
        """A line break in the subject followed by a header is refused."""
        assert ["subject"] == problem_fields(job_data(subject=f"Hi{separator}{self.EVIL}"))

    @pytest.mark.parametrize("separator", ["\r\n", "\n", "\r", *EMAIL_LINE_BREAKS])
    def test_in_header_value(self, separator: str) -> None:
        """A line break in an extra header value followed by a header is refused."""
        headers = {"X-Campaign": f"spring{separator}{self.EVIL}"}
        assert ["headers"] == problem_fields(job_data(headers=headers))

    @pytest.mark.parametrize("name", ["Bcc", "bCC", "Bcc\n", "Bcc\r\n", "X-A\r\nBcc"])
    def test_bcc_as_header_name(self, name: str) -> None:
        """An extra header named ``Bcc``, in any case or with a line break, is refused."""
        assert ["headers"] == problem_fields(job_data(headers={name: "victim@example.org"}))

    @pytest.mark.parametrize(
        ("field", "value", "location"),
        [
            pytest.param("from", f"shop@example.org\r\n{EVIL}", "from", id="CRLF-after-from"),
            pytest.param("from", f"Shop\r\n{EVIL} <shop@example.org>", "from", id="CRLF-in-name"),
            pytest.param("to", [f"ann@example.org\n{EVIL}"], "to.0", id="LF-after-to"),
            pytest.param("cc", [f"Ann\r{EVIL} <ann@example.org>"], "cc.0", id="CR-in-cc-name"),
            pytest.param("reply_to", f"help@example.org\r\n{EVIL}", "reply_to", id="CRLF-reply-to"),
            pytest.param("to", [EVIL], "to.0", id="header-as-address"),
            pytest.param(
                "to",
                ["Ann <ann@example.org>, Victim <victim@example.org>"],
                "to.0",
                id="second-named-address",
            ),
        ],
    )
    def test_in_addresses(self, field: str, value: Any, location: str) -> None:
        """An address carrying a line break or a second address is refused."""
        assert [location] == problem_fields({**job_data(), field: value})

    @pytest.mark.parametrize("separator", ["\r\n", "\n", "\0", *EMAIL_LINE_BREAKS])
    def test_in_attachment_filename(self, separator: str) -> None:
        """A line break in an attachment filename is refused."""
        attachment = {"filename": f"a.txt{separator}{self.EVIL}", "content_base64": b64(b"x")}
        assert ["attachments.0.filename"] == problem_fields(job_data(attachments=[attachment]))

    @pytest.mark.parametrize("content_type", ["text/plain\r\nBcc: x@example.org", "text/plain\n"])
    def test_in_attachment_content_type(self, content_type: str) -> None:
        """A line break in an attachment's MIME type is refused."""
        attachment = {"filename": "a.txt", "content_type": content_type, "content_base64": "eA=="}
        assert ["attachments.0.content_type"] == problem_fields(job_data(attachments=[attachment]))


class TestAttachments:
    """``attachments``: files carried base64-encoded."""

    def test_content_decodes(self) -> None:
        """An attachment's content is the bytes its base64 encodes."""
        content = bytes(range(256))
        job = parse_job(
            job_data(attachments=[{"filename": "a.bin", "content_base64": b64(content)}])
        )
        assert content == job.attachments[0].content()

    def test_default_content_type(self) -> None:
        """Without a content type an attachment is application/octet-stream."""
        job = parse_job(job_data(attachments=[{"filename": "a.bin", "content_base64": "eA=="}]))
        assert "application/octet-stream" == job.attachments[0].content_type

    @pytest.mark.parametrize(
        "content_type",
        ["application/pdf", "text/plain", "image/svg+xml", "application/vnd.ms-excel"],
    )
    def test_mime_types_accepted(self, content_type: str) -> None:
        """A MIME type of the form type/subtype is accepted."""
        attachment = {"filename": "f", "content_type": content_type, "content_base64": "eA=="}
        assert (
            content_type
            == parse_job(job_data(attachments=[attachment])).attachments[0].content_type
        )

    @pytest.mark.parametrize(
        "content_type", ["pdf", "", "text/", "/plain", "text/plain; x=1", "a b/c", "text/plaiñ"]
    )
    def test_bad_mime_types_refused(self, content_type: str) -> None:
        """Something that is not an ASCII type/subtype is refused as content type."""
        attachment = {"filename": "f", "content_type": content_type, "content_base64": "eA=="}
        assert ["attachments.0.content_type"] == problem_fields(job_data(attachments=[attachment]))

    @pytest.mark.parametrize("content", ["not base64!", "eA", "eA==\n", "e A=="])
    def test_base64_must_be_valid(self, content: str) -> None:
        """Content that is not strict base64 is refused."""
        attachment = {"filename": "f", "content_base64": content}
        assert ["attachments.0.content_base64"] == problem_fields(
            job_data(attachments=[attachment])
        )

    @pytest.mark.parametrize("filename", ["", "x" * 256])
    def test_filename_length(self, filename: str) -> None:
        """A filename must have 1-255 characters."""
        attachment = {"filename": filename, "content_base64": "eA=="}
        assert ["attachments.0.filename"] == problem_fields(job_data(attachments=[attachment]))

    def test_unknown_attachment_field_refused(self) -> None:
        """An attachment with an unknown field is refused."""
        attachment = {"filename": "f", "content_base64": "eA==", "inline": True}
        assert ["attachments.0.inline"] == problem_fields(job_data(attachments=[attachment]))


class TestSizeCap:
    """The whole job is capped (default 10 MiB)."""

    def test_default_cap_accepts_10_mib(self) -> None:
        """A job just under 10 MiB is accepted."""
        job = parse_job(job_data(text="x" * (10 * 1024 * 1024 - 100)))
        assert 10 * 1024 * 1024 - 100 < job.approximate_size()

    def test_default_cap_refuses_over_10_mib(self) -> None:
        """A job over 10 MiB is refused."""
        assert ["job"] == problem_fields(job_data(text="x" * (10 * 1024 * 1024 + 1)))

    def test_attachments_count(self) -> None:
        """Attachments count towards the cap."""
        limits = JobLimits(max_job_bytes=2048)
        attachment = {"filename": "big.bin", "content_base64": b64(b"\0" * 2048)}
        assert ["job"] == problem_fields(job_data(attachments=[attachment]), limits)

    def test_custom_cap(self) -> None:
        """A deployment's ``JobLimits`` sets its own cap."""
        limits = JobLimits(max_job_bytes=1024)
        assert "x" * 900 == parse_job(job_data(text="x" * 900), limits).text
        assert ["job"] == problem_fields(job_data(text="x" * 1100), limits)

    def test_counts_bytes_not_characters(self) -> None:
        """The cap is in bytes: 400 euro signs are 1200 bytes of UTF-8, over a 1 KiB cap."""
        assert ["job"] == problem_fields(job_data(text="€" * 400), JobLimits(max_job_bytes=1024))


class TestLane:
    """``lane``: transactional or bulk."""

    def test_default_transactional(self) -> None:
        """A job without a lane is transactional."""
        assert Lane.TRANSACTIONAL == parse_job(job_data()).lane

    @pytest.mark.parametrize(
        ("value", "lane"), [("transactional", Lane.TRANSACTIONAL), ("bulk", Lane.BULK)]
    )
    def test_known_lanes(self, value: str, lane: Lane) -> None:
        """Both lanes are accepted by name."""
        assert lane == parse_job(job_data(lane=value)).lane

    @pytest.mark.parametrize("value", ["urgent", "Bulk", "", 1])
    def test_unknown_lane_refused(self, value: Any) -> None:
        """Any other lane is refused."""
        assert ["lane"] == problem_fields(job_data(lane=value))


class TestNotBefore:
    """``not_before``: an optional UTC time."""

    def test_optional(self) -> None:
        """Without ``not_before`` the job may be sent at once."""
        assert parse_job(job_data()).not_before is None

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2026-01-01T09:00:00Z", datetime(2026, 1, 1, 9, tzinfo=UTC)),
            ("2026-01-01T09:00:00+00:00", datetime(2026, 1, 1, 9, tzinfo=UTC)),
            ("2026-01-01T11:30:00+02:30", datetime(2026, 1, 1, 9, tzinfo=UTC)),
            ("2025-12-31T23:00:00-10:00", datetime(2026, 1, 1, 9, tzinfo=UTC)),
        ],
    )
    def test_converted_to_utc(self, value: str, expected: datetime) -> None:
        """A time with any offset is converted to UTC."""
        not_before = parse_job(job_data(not_before=value)).not_before
        assert not_before is not None
        assert (expected, timedelta(0)) == (not_before, not_before.utcoffset())

    def test_naive_time_refused(self) -> None:
        """A time without a time zone is refused."""
        assert ["not_before"] == problem_fields(job_data(not_before="2026-01-01T09:00:00"))

    def test_garbage_refused(self) -> None:
        """Something that is not a time is refused."""
        assert ["not_before"] == problem_fields(job_data(not_before="tomorrow"))


class TestSmallMaps:
    """``tags`` and ``metadata``: small string maps."""

    @pytest.mark.parametrize("field", ["tags", "metadata"])
    def test_kept(self, field: str) -> None:
        """A small map of identifiers to one-line strings is kept."""
        value = {"campaign": "spring-2026", "tenant_id": "42", "a.b-c": ""}
        assert value == getattr(parse_job(job_data(**{field: value})), field)

    @pytest.mark.parametrize("field", ["tags", "metadata"])
    def test_32_entries_allowed(self, field: str) -> None:
        """Up to 32 entries are allowed."""
        value = {f"k{i}": "v" for i in range(32)}
        assert 32 == len(getattr(parse_job(job_data(**{field: value})), field))

    @pytest.mark.parametrize("field", ["tags", "metadata"])
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param({f"k{i}": "v" for i in range(33)}, id="33-entries"),
            pytest.param({"k": "v" * 257}, id="257-char-value"),
            pytest.param({"k": "two\nlines"}, id="LF-in-value"),
            pytest.param({"k": "cr\r"}, id="CR-in-value"),
            pytest.param({"has space": "v"}, id="space-in-key"),
            pytest.param({"1starts_with_digit": "v"}, id="digit-first-key"),
            pytest.param({"": "v"}, id="empty-key"),
            pytest.param({"k" * 65: "v"}, id="65-char-key"),
            pytest.param({"key\n": "v"}, id="LF-after-key"),
        ],
    )
    def test_limits(self, field: str, value: dict[str, str]) -> None:
        """Too many entries, long or multi-line values and odd keys are refused."""
        assert [field] == problem_fields(job_data(**{field: value}))

    @pytest.mark.parametrize("field", ["tags", "metadata"])
    def test_values_are_strings(self, field: str) -> None:
        """Map values must be strings."""
        assert [f"{field}.n"] == problem_fields(job_data(**{field: {"n": 1}}))


class TestUnknownFields:
    """The schema is closed (extra=forbid)."""

    @pytest.mark.parametrize("name", ["priority", "From", "from_", "body"])
    def test_unknown_field_refused(self, name: str) -> None:
        """An unknown top-level field is refused, by its name."""
        assert [name] == problem_fields({**job_data(), name: "x"})


class TestParseJob:
    """``parse_job``: JSON bytes, text or a dict in; a job or a field-naming error out."""

    def test_from_bytes_text_and_dict(self) -> None:
        """Bytes, text and a dict of the same job parse equal."""
        data = job_data()
        text = json.dumps(data)
        assert parse_job(data) == parse_job(text) == parse_job(text.encode())

    def test_problems_name_every_field(self) -> None:
        """Every bad field is reported, each named as on the wire."""
        data = job_data(
            from_="nope",
            to=["ann@example.org", "x"],
            lane="urgent",
            not_before="2026-01-01T09:00:00",
            attachments=[{"filename": "f", "content_base64": "!"}],
            bogus=1,
        )
        expected = ["from", "to.1", "attachments.0.content_base64", "lane", "not_before", "bogus"]
        assert expected == problem_fields(data)

    def test_message_joins_problems(self) -> None:
        """The error's text is ``field: problem`` pairs, the field first."""
        with pytest.raises(InvalidJobError) as caught:
            parse_job(job_data(lane="urgent"))
        assert str(caught.value).startswith("lane: ")

    @pytest.mark.parametrize("data", [b"not json", "", "[1, 2]", b'{"from": '])
    def test_not_json_object(self, data: bytes | str) -> None:
        """Input that is not a JSON object is refused as a whole job."""
        with pytest.raises(InvalidJobError) as caught:
            parse_job(data)
        assert ["job"] == [field for field, _ in caught.value.problems]


class TestParseMessage:
    """``parse_message``: a message body, checked against its AMQP ``type`` first."""

    @pytest.mark.parametrize("kind", [JOB_TYPE, None])
    def test_v1_or_untyped(self, kind: str | None) -> None:
        body = json.dumps(job_data()).encode()
        assert parse_job(body) == parse_message(body, kind)

    def test_other_type(self) -> None:
        """Another type is refused before the body is read, naming both types."""
        with pytest.raises(InvalidJobError) as caught:
            parse_message(b"not json", "other.v9")
        assert f"type: unknown message type 'other.v9', expected {JOB_TYPE}" == str(caught.value)


class TestToWire:
    """``to_wire``: the JSON the producer publishes."""

    def full_job(self) -> EmailJob:
        return parse_job(
            job_data(
                from_="Shop <shop@example.org>",
                to=["Ann <ann@example.org>"],
                cc=["cc@example.org"],
                bcc=["bcc@example.org"],
                reply_to="help@example.org",
                subject="Grüße",
                html="<p>Hi</p>",
                headers={"X-Campaign": "spring"},
                attachments=[
                    {
                        "filename": "a.pdf",
                        "content_type": "application/pdf",
                        "content_base64": "eA==",
                    }
                ],
                lane="bulk",
                not_before="2026-01-01T10:00:00+01:00",
                tags={"campaign": "spring"},
                metadata={"tenant": "42"},
            )
        )

    def test_round_trip(self) -> None:
        """A job survives ``to_wire`` then ``parse_job`` unchanged."""
        job = self.full_job()
        assert job == parse_job(job.to_wire())

    def test_minimal_round_trip(self) -> None:
        """A minimal job, with a generated id, survives the round trip."""
        job = parse_job(job_data(id=None))
        assert job == parse_job(job.to_wire())

    def test_wire_names(self) -> None:
        """On the wire the sender is ``from``, the lane its name and times UTC with Z."""
        wire = json.loads(self.full_job().to_wire())
        expected = ("Shop <shop@example.org>", "bulk", "2026-01-01T09:00:00Z")
        assert expected == (wire["from"], wire["lane"], wire["not_before"])
        assert "from_" not in wire

    def test_absent_optionals_left_out(self) -> None:
        """Unset optional fields are left out, not sent as null."""
        wire = json.loads(parse_job(job_data()).to_wire())
        assert not {"reply_to", "html", "not_before"} & set(wire)
