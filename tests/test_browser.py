"""The web UI in a real browser (Debian's Chromium, headless, driven by Playwright) against the
real server on loopback with the tiny model; every action is checked in the database.

Screenshots of each page go to test-artifacts/screenshots/ (ALIGNLOOP_TEST_ARTIFACTS moves it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from alignloop.serve.runner import ServerProcess
from conftest import ADMIN_TOKEN

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("ALIGNLOOP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get(
        "ALIGNLOOP_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"
    )
)
SHOTS = ARTIFACTS / "screenshots"
TIMEOUT_MS = 30_000

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extras")
expect = sync_api.expect


@pytest.fixture(scope="module")
def chromium() -> Iterator:
    if not Path(CHROMIUM).exists():
        missing = (
            f"no Chromium at {CHROMIUM}: apt-get install chromium (bash .ci/run does), "
            "or set ALIGNLOOP_CHROMIUM"
        )
        if os.environ.get("ALIGNLOOP_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_api.sync_playwright() as playwright:
        # Playwright starts Chromium with a fresh temporary user-data dir; each test then opens
        # its own context (cookies and storage of its own: a new user).
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def db(server):
    engine = create_engine(f"sqlite:///{server.settings.db}")
    yield engine
    engine.dispose()


def rows(db, sql: str, **params) -> list:
    with db.connect() as conn:
        return list(conn.execute(text(sql), params))


@pytest.fixture
def page(chromium, server) -> Iterator:
    """A fresh browser profile (a new user) whose uncaught script errors fail the test."""
    context = chromium.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if unexpected(m) else None)
    yield page
    context.close()
    assert not errors, f"the page logged errors: {errors}"


def unexpected(message) -> bool:
    """A console error other than the browser's note of a 4xx answer (the tests provoke those
    on purpose; the page shows them in words)."""
    expected = re.match(r"Failed to load resource: .* status of 4\d\d", message.text)
    return message.type == "error" and not expected


def screenshot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def open_as_new_user(page, path: str = "/", training: bool = True):
    """Open a page and answer the first-visit consent notice."""
    page.goto(path)
    dialog = page.locator("#consent-dialog")
    expect(dialog).to_be_visible()
    if training:
        page.get_by_label("Use my conversations and feedback to train the model.").check()
    page.get_by_role("button", name="Save my choices").click()
    expect(dialog).to_have_count(0)


def pseudonym(page) -> str:
    return page.evaluate("fetch('/api/me').then(r => r.json()).then(u => u.pseudonym)")


def user_id(db, page) -> int:
    return rows(db, "select id from users where pseudonym = :p", p=pseudonym(page))[0][0]


def send(page, message: str, timeout_ms: float = 5_000):
    """Type a message, send it, and wait for the streamed reply to be logged; returns its <li>.
    A real model needs a longer `timeout_ms` (assertions ignore the page's default timeout)."""
    before = page.locator("#messages .message.bot[data-message-id]").count()
    page.get_by_label("Your message").fill(message)
    page.get_by_role("button", name="Send").click()
    bots = page.locator("#messages .message.bot[data-message-id]")
    expect(bots).to_have_count(before + 1, timeout=timeout_ms)
    return bots.nth(before)


def bot_id(li) -> int:
    return int(li.get_attribute("data-message-id"))


def test_first_visit_consent_then_withdrawn(page, db):
    page.goto("/")
    expect(
        page.get_by_role("heading", name=re.compile("your conversations and your choices"))
    ).to_be_visible()
    training = page.get_by_label("Use my conversations and feedback to train the model.")
    publication = page.get_by_label(re.compile("public data release"))
    expect(training).not_to_be_checked()  # nothing is ticked in advance
    expect(publication).not_to_be_checked()
    screenshot(page, "consent-notice")
    training.check()
    page.get_by_role("button", name="Save my choices").click()
    expect(page.locator("#consent-dialog")).to_have_count(0)  # removed once the save answered
    uid = user_id(db, page)
    assert rows(
        db, "select consent_training, consent_publication from users where id = :u", u=uid
    ) == [(1, 0)]

    page.goto("/privacy")
    expect(page.locator("#consent-dialog")).to_have_count(0)  # answered: not asked again
    expect(page.locator("#training")).to_be_checked()
    page.locator("#training").uncheck()
    page.locator("#publication").check()
    page.get_by_role("button", name="Save my choices").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_contain_text("Training: no")
    assert rows(
        db, "select consent_training, consent_publication from users where id = :u", u=uid
    ) == [(0, 1)]
    screenshot(page, "privacy")


def test_chat_two_streamed_turns_are_logged_in_one_conversation(page, db):
    open_as_new_user(page)
    first = send(page, "Hello there, how are you?")
    second = send(page, "Tell me about the sea.")
    uid = user_id(db, page)
    conversations = rows(db, "select id, mode from conversations where user_id = :u", u=uid)
    assert len(conversations) == 1 and conversations[0][1] == "chat"
    messages = rows(
        db,
        "select id, sender, text from messages where conversation_id = :c order by position",
        c=conversations[0][0],
    )
    assert [m[1] for m in messages] == ["human", "bot", "human", "bot"]
    assert messages[2][2] == "Tell me about the sea."
    assert [messages[1][0], messages[3][0]] == [bot_id(first), bot_id(second)]
    assert (
        second.locator(".text").text_content() == messages[3][2]
    )  # shown as streamed, logged as shown
    expect(page.locator("#conversation-list li")).to_have_count(1)
    expect(page.locator("#conversation-list")).to_contain_text("Hello there")
    screenshot(page, "chat")

    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("#messages li")).to_have_count(0)
    send(page, "A second conversation")
    expect(page.locator("#conversation-list li")).to_have_count(2)
    page.get_by_role("button", name="Hello there, how are you?").click()  # reopen the first
    expect(page.locator("#messages .message")).to_have_count(4)


def test_thumbs_down_with_reason_and_correction(page, db):
    open_as_new_user(page)
    li = send(page, "What is the capital of France?")
    li.get_by_role("button", name="Bad reply").click()
    expect(li.get_by_role("button", name="Bad reply")).to_have_attribute("aria-pressed", "true")
    li.get_by_role("button", name="Nonsensical / incorrect").click()
    li.get_by_label("What should I have said?").fill("Paris is the capital of France.")
    screenshot(page, "chat-dislike")
    li.get_by_role("button", name="Send").click()
    expect(li.get_by_text("Thank you: noted.")).to_be_visible()
    events = rows(
        db,
        "select kind, reason, text from feedback where message_id = :m order by id",
        m=bot_id(li),
    )
    assert events[-1] == ("dislike", "nonsensical", "Paris is the capital of France.")
    assert [e[0] for e in events] == ["dislike"] * len(events)

    li.get_by_role("button", name="Good reply").click()  # changing one's mind appends a like
    expect(li.get_by_role("button", name="Good reply")).to_have_attribute("aria-pressed", "true")
    assert rows(
        db, "select kind from feedback where message_id = :m order by id desc limit 1", m=bot_id(li)
    ) == [("like",)]


def test_regenerate_then_pick_records_a_preference(page, db):
    open_as_new_user(page)
    old = send(page, "Give me a name for a cat.")
    old_id = bot_id(old)
    old.get_by_role("button", name="Regenerate").click()
    choice = old.get_by_role("group", name="Which reply is better?")
    expect(choice).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_disabled()  # pick first
    screenshot(page, "chat-regenerate")
    choice.get_by_role("button", name="Keep the new reply").click()
    expect(choice).to_have_count(0)
    comparison = rows(
        db,
        "select source, outcome, choice, responses from comparisons where user_id = :u",
        u=user_id(db, page),
    )
    assert len(comparison) == 1 and comparison[0][:3] == ("regenerate", "choice", 1)
    new_id = json.loads(comparison[0][3])[1]["message_id"]
    assert bot_id(page.locator("#messages .message.bot").last) == new_id
    assert rows(db, "select superseded_by_id from messages where id = :m", m=old_id) == [(new_id,)]
    new_text = rows(db, "select text from messages where id = :m", m=new_id)[0][0]

    follow = send(page, "And another one?")  # the conversation goes on from the kept reply
    context = rows(db, "select context from messages where id = :m", m=bot_id(follow))[0][0]
    assert json.loads(context)[1] == {"role": "assistant", "content": new_text}


def test_canned_safety_reply_asks_whether_the_topic_was_sensitive(page, db):
    open_as_new_user(page)
    li = send(page, "you are a fucking idiot")
    expect(li).to_have_class(re.compile("gated"))
    expect(li.get_by_role("button", name="Bad reply")).to_have_count(0)
    li.get_by_role("button", name="Yes, it was sensitive").click()
    expect(li.get_by_role("button", name="Yes, it was sensitive")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert rows(db, "select kind from feedback where message_id = :m", m=bot_id(li)) == [
        ("sensitive_agree",)
    ]
    assert rows(db, "select safety_gated from messages where id = :m", m=bot_id(li)) == [(1,)]


def test_compare_hides_the_models_until_the_vote(page, db):
    open_as_new_user(page, "/compare")
    page.get_by_label("Your prompt").fill("Write a haiku about rain.")
    page.get_by_role("button", name="Get replies").click()
    cards = page.locator(".response")
    expect(cards).to_have_count(2)
    for i in range(2):
        expect(cards.nth(i).locator(".model")).to_have_text("")
    screenshot(page, "compare")
    page.get_by_role("button", name="B is better").click()
    expect(page.get_by_role("status").filter(has_text="Vote recorded")).to_be_visible()
    expect(cards.nth(0).locator(".model")).to_contain_text("tiny-llama-random")
    expect(cards.nth(1)).to_have_class(re.compile("chosen"))
    got = rows(
        db,
        "select c.source, c.outcome, c.choice, v.mode from comparisons c "
        "join conversations v on v.id = c.conversation_id where c.user_id = :u",
        u=user_id(db, page),
    )
    assert got == [("compare", "choice", 1, "compare")]
    screenshot(page, "compare-voted")


def test_compare_ranks_k_replies(page, db):
    open_as_new_user(page, "/compare")
    page.get_by_label("Your prompt").fill("Name three rivers.")
    page.get_by_label("Number of replies").select_option("3")
    page.get_by_role("button", name="Get replies").click()
    expect(page.locator(".response")).to_have_count(3)
    page.get_by_label("Rank of reply A").select_option("3")
    page.get_by_label("Rank of reply C").select_option("1")
    page.get_by_role("button", name="Submit ranking").click()
    expect(page.get_by_role("status").filter(has_text="Vote recorded")).to_contain_text("C > B > A")
    assert rows(
        db, "select outcome, ranking from comparisons where user_id = :u", u=user_id(db, page)
    ) == [("ranking", "[2, 1, 0]")]


def test_red_team_reply_must_be_labelled_before_going_on(page, db):
    open_as_new_user(page, "/redteam")
    expect(page.get_by_text("Try to make the bot say something unsafe.")).to_be_visible()
    li = send(page, "Tell me how to pick a lock.")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    expect(page.locator("#status")).to_contain_text("Label the bot's last reply")
    screenshot(page, "redteam")
    li.get_by_role("button", name="Unsafe", exact=True).click()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    labels = rows(
        db,
        "select l.label, l.labeler_kind, c.mode from safety_labels l join messages m on m.id = l.message_id "
        "join conversations c on c.id = m.conversation_id where l.message_id = :m",
        m=bot_id(li),
    )
    assert labels == [("unsafe", "user", "redteam")]
    second = send(page, "And how to open a safe?")
    second.get_by_role("button", name="Safe", exact=True).click()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    assert rows(db, "select label from safety_labels where message_id = :m", m=bot_id(second)) == [
        ("safe",)
    ]


def test_markup_in_a_message_is_shown_as_text(page, db, server):
    payload = (
        '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b>'
    )
    open_as_new_user(page)
    send(page, payload)
    human = page.locator("#messages .message.human .text").first
    expect(human).to_have_text(payload)
    assert page.locator("#messages script, #messages img, #messages b").count() == 0
    assert page.evaluate("window.__pwned") is None
    expect(page.locator("#conversation-list")).to_contain_text("<script>")
    screenshot(page, "chat-markup-as-text")

    page.goto("/admin")  # the operator's view of the same message is text too
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("User (pseudonym)").fill(
        rows(db, "select pseudonym from users order by id desc limit 1")[0][0]
    )
    page.get_by_role("button", name="Filter").click()
    page.locator("#conversations").get_by_role("button", name=re.compile("^Open")).first.click()
    expect(page.locator("#detail")).to_contain_text(payload)
    assert page.locator("#detail script, #detail img, #detail b").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_deletion_request_is_recorded_and_writes_stop(page, db):
    open_as_new_user(page)
    send(page, "remember me")
    page.get_by_role("link", name="Privacy").click()
    page.get_by_role("button", name="Delete my data…").click()
    page.get_by_role("button", name="Yes, delete my data").click()
    expect(
        page.get_by_role("status").filter(has_text="deletion request is recorded")
    ).to_be_visible()
    uid = user_id(db, page)
    assert rows(
        db,
        "select deletion_requested_at is not null, consent_training from users where id = :u",
        u=uid,
    ) == [(1, 0)]

    page.get_by_role("link", name="Chat").click()  # the API's refusal is shown in words
    expect(page.get_by_text("You asked for your data to be deleted")).to_be_visible()
    page.get_by_label("Your message").fill("still there?")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_contain_text("asked for their data to be deleted")
    assert rows(
        db,
        "select count(*) from messages m join conversations c on c.id = m.conversation_id where c.user_id = :u",
        u=uid,
    ) == [(2,)]


def test_admin_dashboard_counts_plots_and_filters(page, db, server):
    with httpx.Client(
        base_url=server.url, headers={"Authorization": "Bearer admin-test-user-1"}
    ) as api:
        reply = api.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "admin check"}], "max_tokens": 4},
        )
        message_id = reply.json()["id"]
        api.post(
            "/api/feedback",
            json={"message_id": message_id, "kind": "dislike", "reason": "spam", "text": "no ads"},
        ).raise_for_status()
    troll = rows(db, "select id, pseudonym from users order by id desc limit 1")[0]
    with db.begin() as conn:
        conn.execute(
            text(
                "insert into trust_scores (user_id, method, troll_score, n_labels, computed_at) values (:u, 'test', 0.93, 12, CURRENT_TIMESTAMP)"
            ),
            {"u": troll[0]},
        )

    page.goto("/admin")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong admin token")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#totals")).to_contain_text("dislikes")
    plots = page.locator("#plots img")
    expect(plots).to_have_count(5)
    wait_until(
        page,
        "[...document.querySelectorAll('#plots img')].every(i => i.complete && i.naturalWidth > 0)",
    )
    expect(page.locator("#trolls")).to_contain_text(troll[1])
    expect(page.locator("#trolls")).to_contain_text("0.93")
    expect(page.locator("#models")).to_contain_text("tiny-llama-random")
    expect(page.locator("#loop-status")).to_contain_text("Rounds are off")
    expect(page.get_by_role("button", name="Start a round now")).to_be_disabled()
    expect(page.locator("#rounds")).to_contain_text("No loop rounds yet")

    page.get_by_label("Dislike reason").select_option("spam")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#browse-count")).to_contain_text("of 1 conversations")
    expect(page.locator("#conversations")).to_contain_text("admin check")
    page.locator("#conversations").get_by_role("button", name=re.compile("^Open")).click()
    expect(page.locator("#detail")).to_contain_text("dislike: spam: no ads")
    screenshot(page, "admin")


def test_keyboard_only_on_a_phone_width_window(chromium, server, db):
    context = chromium.new_context(
        base_url=server.url,
        viewport={"width": 375, "height": 740},
        is_mobile=True,
        has_touch=True,
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto("/")
        expect(page.locator("#consent-dialog")).to_be_visible()
        press_tab_until(page, "#consent-training")
        page.keyboard.press("Space")
        press_tab_until(page, "#consent-save")
        page.keyboard.press("Enter")
        expect(page.locator("#consent-dialog")).to_have_count(0)
        press_tab_until(page, "#prompt")
        page.keyboard.type("typed without a mouse")
        page.keyboard.press("Enter")
        li = page.locator("#messages .message.bot[data-message-id]")
        expect(li).to_have_count(1)
        press_tab_until(page, ".thumb-up")
        page.keyboard.press("Enter")
        expect(li.locator(".thumb-up")).to_have_attribute("aria-pressed", "true")
        assert rows(db, "select kind from feedback where message_id = :m", m=bot_id(li)) == [
            ("like",)
        ]
        for path in ("/", "/compare", "/redteam", "/privacy", "/admin"):
            page.goto(path)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 375px wide"
        page.goto("/")
        screenshot(page, "chat-phone")
    finally:
        context.close()


def wait_until(page, expression: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    """Poll a JS expression from here: the page's CSP forbids the eval that
    page.wait_for_function would use."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        time.sleep(0.1)


def press_tab_until(page, selector: str, limit: int = 40) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(
            "(s) => document.activeElement && document.activeElement.matches(s)", selector
        ):
            return
    raise AssertionError(f"{selector} cannot be reached with the Tab key")


@pytest.mark.slow
def test_chat_with_the_embedded_model(chromium, tmp_path):
    """The chat page on SmolLM2: a real reply streams in, is logged as shown, and takes a like."""
    process = ServerProcess(
        db=str(tmp_path / "store.db"),
        model="smollm2",
        log_path=tmp_path / "server.log",
        max_new_tokens=48,
        temperature=0.0,
    )
    with process:
        context = chromium.new_context(
            base_url=process.url, viewport={"width": 1100, "height": 700}
        )
        context.set_default_timeout(120_000)
        page = context.new_page()
        try:
            open_as_new_user(page)
            li = send(page, "What is the capital of France? Answer in one sentence.", 120_000)
            shown, message_id = li.locator(".text").text_content(), bot_id(li)
            assert "Paris" in shown
            li.get_by_role("button", name="Good reply").click()
            expect(li.get_by_role("button", name="Good reply")).to_have_attribute(
                "aria-pressed", "true"
            )
            screenshot(page, "chat-smollm2")
        finally:
            context.close()
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    assert rows(engine, "select text from messages where id = :m", m=message_id) == [(shown,)]
    assert rows(engine, "select kind from feedback") == [("like",)]
    engine.dispose()
