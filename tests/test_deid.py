"""De-identification: what a reader of a released data set would notice."""

from __future__ import annotations

import pytest

from alignloop.curate.deid import find, new_release_secret, rehash_user_id, scrub
from alignloop.curate.deid.numbers import luhn_ok


def found(text: str) -> list[tuple[str, str]]:
    return [(span.type, span.text) for span in find(text)]


@pytest.mark.parametrize(
    "text, value",
    [
        ("mail me at jane.doe@example.com please", "jane.doe@example.com"),
        ("My address is Bob_Smith+news@mail.co.uk.", "Bob_Smith+news@mail.co.uk"),
        ("write to INFO@Company.ORG", "INFO@Company.ORG"),
    ],
)
def test_emails_are_replaced(text: str, value: str) -> None:
    assert ("EMAIL", value) in found(text)
    assert value not in scrub(text)
    assert "[EMAIL]" in scrub(text)


@pytest.mark.parametrize(
    "text, value",
    [
        ("see https://example.com/a/b?c=1 for more", "https://example.com/a/b?c=1"),
        ("my blog is www.janes-kitchen.net.", "www.janes-kitchen.net"),
        ("it's on example.org/recipes/42, check it", "example.org/recipes/42"),
        ("(link: http://foo.bar.co.uk)", "http://foo.bar.co.uk"),
    ],
)
def test_urls_with_and_without_scheme_are_replaced(text: str, value: str) -> None:
    assert ("URL", value) in found(text)


def test_file_names_and_dotted_words_are_not_urls() -> None:
    text = "Run setup.py, read README.md, use Node.js or ASP.NET, e.g. at 9 a.m. in the U.S."
    assert found(text) == []


@pytest.mark.parametrize(
    "text, value",
    [
        ("my server is 192.168.1.20, can you reach it?", "192.168.1.20"),
        ("ping 8.8.8.8", "8.8.8.8"),
        ("ipv6 2001:db8:85a3::8a2e:370:7334 works", "2001:db8:85a3::8a2e:370:7334"),
        ("localhost is ::1 too", "::1"),
    ],
)
def test_ip_addresses_are_replaced(text: str, value: str) -> None:
    assert found(text) == [("IP", value)]


def test_invalid_ips_and_versions_are_left_alone() -> None:
    assert found("10.0.0.256 is out of range") == []
    assert found("I run version 1.2.3.4 of the app; it is 12:30:45 now; std::vector") == []


@pytest.mark.parametrize(
    "number",
    ["4111 1111 1111 1111", "4012-8888-8888-1881", "378282246310005", "3782 822463 10005"],
)
def test_luhn_valid_card_numbers_are_replaced(number: str) -> None:
    text = f"my card number is {number}, expires 04/27"
    assert found(text) == [("CARD", number)]
    assert scrub(text) == "my card number is [CARD], expires 04/27"


@pytest.mark.parametrize(
    "number", ["4111 1111 1111 1112", "4012-8888-8888-1882", "5500000000000005"]
)
def test_card_like_numbers_that_fail_luhn_are_left_alone(number: str) -> None:
    assert not luhn_ok(number.replace(" ", "").replace("-", ""))
    assert found(f"my card number is {number}") == []


@pytest.mark.parametrize(
    "phone",
    [
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "+1 415 555 2671",
        "1-800-555-0199",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "020 7946 0958",
        "07700 900123",
        "+33 1 42 68 53 00",
        "01 42 68 53 00",
        "+49 30 1234567",
        "555-0123",
    ],
)
def test_phone_numbers_in_many_formats_are_replaced(phone: str) -> None:
    text = f"You can reach me on {phone} after six."
    assert found(text) == [("PHONE", phone)]


def test_bare_digits_are_a_phone_only_after_a_cue() -> None:
    assert found("call me 4155552671") == [("PHONE", "4155552671")]
    assert found("my order 4155552671 was late") == []


@pytest.mark.parametrize(
    "text",
    [
        "The meeting is on 2024-03-15 at 10:30, or 15.03.2024, or 03/15/2024.",
        "It cost $1,299.99 in 1999 and €2.499,00 in 2021; population 8,336,817.",
        "Python 3.11.4 on Ubuntu 22.04 with 16 GB, ISBN 978-3-16-148410-0.",
        "The score was 3-2 and 110-98 in the 2019-2020 season.",
        "tracking number 1Z999AA10123456784, zip 90210",
    ],
)
def test_dates_prices_years_and_versions_are_not_flagged(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    "text, value",
    [
        ("I live at 42 Oak Street, can you recommend a cafe?", "42 Oak Street"),
        (
            "Ship it to 350 Fifth Avenue, Suite 3300, New York, NY 10118 please",
            "350 Fifth Avenue, Suite 3300, New York, NY 10118",
        ),
        (
            "send to 1600 Pennsylvania Ave NW, Washington, DC 20500.",
            "1600 Pennsylvania Ave NW, Washington, DC 20500",
        ),
        ("He lives at 221B Baker Street, London NW1 6XE.", "221B Baker Street, London NW1 6XE"),
        ("we moved to 12 oak lane last year", "12 oak lane"),
        ("Our PO Box 1234 gets the mail", "PO Box 1234"),
        ("the postcode is SW1A 1AA", "SW1A 1AA"),
    ],
)
def test_postal_addresses_are_replaced(text: str, value: str) -> None:
    assert ("ADDRESS", value) in found(text)


def test_distances_and_titles_are_not_addresses() -> None:
    assert found("I walked 5 miles down the road and read Top 10 Tips To Walk Faster") == []


@pytest.mark.parametrize(
    "text, names",
    [
        ("My name is John Smith and I need help", ["John Smith"]),
        ("hi, my name is maria garcia", ["maria garcia"]),
        ("I'm Will, nice to meet you", ["Will"]),
        ("My friend Jürgen is visiting", ["Jürgen"]),
        ("Dr. Okafor and Mrs. Nguyen will join", ["Okafor", "Nguyen"]),
        ("Sarah and I went to the beach", ["Sarah"]),
        ("Will Smith and Bill Gates were there", ["Will Smith", "Bill Gates"]),
        (
            "Say hi to Mary-Jane O'Brien and John F. Kennedy.",
            ["Mary-Jane O'Brien", "John F. Kennedy"],
        ),
        ("Best regards,\nOlga Petrova", ["Olga Petrova"]),
        ("Emily's mom drove us", ["Emily"]),
    ],
)
def test_person_names_are_replaced(text: str, names: list[str]) -> None:
    assert [value for kind, value in found(text) if kind == "NAME"] == names


@pytest.mark.parametrize(
    "text",
    [
        "Will you help me? May I ask something? Grace period ends Monday.",
        "I love Paris and New York. The Grand Canyon is in Arizona.",
        "Apple released the iPhone in September; Chase Bank is open.",
        "Hello World! Hi there. Hey everyone! Thanks again.",
        "The Best Way To Learn Guitar In 30 Days",
        "We visited Jackson Heights and San Jose.",
        "I'm tired. I'm Happy. I'm from Texas. This is May.",
    ],
)
def test_ordinary_capitalised_words_are_kept(text: str) -> None:
    assert scrub(text) == text


def test_placeholders_are_typed() -> None:
    text = (
        "I'm Anna Kowalski, anna@example.com, +1 415 555 2671, 42 Oak Street, "
        "card 4111 1111 1111 1111, site www.anna.dev, server 10.0.0.7"
    )
    assert scrub(text) == (
        "I'm [NAME], [EMAIL], [PHONE], [ADDRESS], card [CARD], site [URL], server [IP]"
    )


def test_spans_point_into_the_text() -> None:
    text = "Call Priya at 020 7946 0958"
    for span in find(text):
        assert text[span.start : span.end] == span.text


def test_email_wins_over_the_name_and_domain_inside_it() -> None:
    assert found("write to john.smith@example.com") == [("EMAIL", "john.smith@example.com")]


@pytest.mark.parametrize(
    "text",
    [
        "My name is John Smith, call me at (415) 555-2671 or mail john.smith@example.com",
        "Dear Mr. and Mrs. Thompson, thanks. Best regards, Olga Petrova",
        "I live at 42 Oak Street, Apt 4B, Springfield, IL 62704 with Will Smith",
        "visit example.com/path, https://foo.bar/x or 192.168.0.1; card 4012-8888-8888-1881",
        "Hi Jürgen, meet Dr. Okafor at 221B Baker Street, London NW1 6XE",
    ],
)
def test_scrub_is_idempotent(text: str) -> None:
    once = scrub(text)
    assert once != text
    assert scrub(once) == once


def test_empty_and_clean_text() -> None:
    assert scrub("") == ""
    assert find("") == []
    assert scrub("how are you today?") == "how are you today?"


def test_rehash_user_id_is_stable_per_secret_and_differs_across_secrets() -> None:
    first, second = new_release_secret(), new_release_secret()
    assert first != second
    one = rehash_user_id("user-123", first)
    assert one == rehash_user_id("user-123", first)
    assert one != rehash_user_id("user-123", second)
    assert one != rehash_user_id("user-124", first)
    assert len(one) == 32 and int(one, 16) >= 0
    assert "user-123" not in one


def test_rehash_user_id_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        rehash_user_id("user-123", "")
