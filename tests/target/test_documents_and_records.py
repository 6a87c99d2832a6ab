"""The app's document channel and customer records (Labs 02 and 03)."""

from __future__ import annotations

import json

import pytest

from doubleedge.guards import FunctionGuard, RewriteGuard
from doubleedge.models import ChatModel, ReferenceModel
from doubleedge.target import Defense, Document, SupportBot
from doubleedge.target.bot import ACCOUNT_SYSTEM_PROMPT, render_documents
from doubleedge.target.records import customer_ids, customers, derive_canary, find, records_block
from doubleedge.target.server import RequestError, parse_chat_fields, parse_chat_request, serving

SECRET = "DE-FAKE-1234-ABCD"


class Recording(ChatModel):
    def __init__(self):
        self.calls = []

    def generate(self, messages, *, max_new_tokens=256):
        self.calls.append(list(messages))
        return "ok"


def test_records_are_fake_and_card_digits_depend_on_the_secret():
    people = customers(SECRET)
    assert [c.id for c in people] == list(customer_ids())
    assert all(c.email.endswith("@example.com") and c.phone.startswith("555-01") for c in people)
    assert {c.card_last4 for c in people} != {c.card_last4 for c in customers("DE-FAKE-0000-0000")}
    assert all(len(c.card_last4) == 4 and c.card_last4[0] in "6789" for c in people)
    assert customers(SECRET) == customers(SECRET)


def test_canary_is_per_secret_and_shaped_like_a_token():
    assert derive_canary(SECRET).startswith("DE-CANARY-") and len(derive_canary(SECRET)) == 19
    assert derive_canary(SECRET) != derive_canary("DE-FAKE-0000-0000")


def test_unknown_customer_is_an_error():
    with pytest.raises(ValueError, match="no customer"):
        find(SECRET, "C-9999")
    with pytest.raises(ValueError):
        SupportBot(Recording(), secret=SECRET, customer="C-9999")


def test_documents_follow_the_message_in_an_envelope():
    model = Recording()
    SupportBot(model, secret=SECRET).reply("Summarize this.", documents=["first", Document("second", "email from x")])
    user = model.calls[0][1].content
    assert user == "Summarize this.\n\n[document 1: document]\nfirst\n[end of document 1]\n\n" \
        "[document 2: email from x]\nsecond\n[end of document 2]"  # fmt: skip


def test_without_documents_the_message_is_unchanged():
    model = Recording()
    SupportBot(model, secret=SECRET).reply("Hello")
    assert model.calls[0][1].content == "Hello"
    assert render_documents("Q", []) == "Q"


def test_document_guards_rewrite_or_drop_each_document():
    model = Recording()
    defense = Defense(document_guards=[RewriteGuard(str.upper), FunctionGuard(lambda t: "EVIL" in t, "evil")])
    turn = SupportBot(model, secret=SECRET, defense=defense).respond("Q", documents=["fine", "evil text"])
    assert "FINE" in model.calls[0][1].content and "EVIL" not in model.calls[0][1].content
    assert turn.dropped == ("document 2: evil: matched",)


def test_documents_must_be_text():
    with pytest.raises(TypeError):
        SupportBot(Recording(), secret=SECRET).reply("Q", documents=[42])


def test_naive_app_puts_every_record_in_the_prompt():
    model = Recording()
    SupportBot(model, secret=SECRET, customer="C-1001").reply("Hi")
    system = model.calls[0][0].content
    assert all(c.email in system for c in customers(SECRET))
    assert "You are talking to customer C-1001 (Alex Rivera)" in system


def test_record_access_filters_in_code_and_fails_closed():
    model = Recording()
    own = Defense(record_access=lambda customer, record: customer == record)
    SupportBot(model, secret=SECRET, defense=own, customer="C-1002").reply("Hi")
    system = model.calls[-1][0].content
    assert "sam.okafor@example.com" in system and "alex.rivera@example.com" not in system

    def broken(customer, record):
        raise RuntimeError("bug")

    SupportBot(model, secret=SECRET, defense=Defense(record_access=broken), customer="C-1001").reply("Hi")
    assert "@example.com" not in model.calls[-1][0].content
    truthy = Defense(record_access=lambda c, r: "yes")  # only True allows
    SupportBot(model, secret=SECRET, defense=truthy, customer="C-1001").reply("Hi")
    assert "@example.com" not in model.calls[-1][0].content


def test_per_request_customer_overrides_the_bots():
    model = Recording()
    bot = SupportBot(model, secret=SECRET, customer="C-1001")
    bot.reply("Hi", customer="C-1004")
    assert "You are talking to customer C-1004" in model.calls[-1][0].content


def test_canary_placeholder_is_filled():
    bot = SupportBot(Recording(), secret=SECRET, defense=Defense(system_prompt=ACCOUNT_SYSTEM_PROMPT))
    assert derive_canary(SECRET) in bot.system_prompt and "{canary}" not in bot.system_prompt


@pytest.mark.parametrize(("typed", "valid"), [(SECRET, True), ("DE-FAKE-0000-ABCD", False)])
def test_app_side_code_check_needs_no_secret_in_the_prompt(typed, valid):
    defense = Defense(system_prompt="You are Bell.", check_codes="app")
    reply = SupportBot(ReferenceModel(), secret=SECRET, defense=defense).reply(f"Is {typed} a valid code?")
    assert ("is a valid code" in reply) == valid
    model = Recording()
    SupportBot(model, secret=SECRET, defense=defense).reply("What's the weather?")
    assert SECRET not in model.calls[0][0].content


def test_check_codes_is_validated():
    with pytest.raises(ValueError, match="check_codes"):
        Defense(check_codes="maybe")


def test_records_block_lists_records_and_who_is_asking():
    people = customers(SECRET)
    block = records_block(people[:1], people[0])
    assert block.splitlines()[0] == "[customer records]" and "card ending" in block


def test_chat_request_optional_fields():
    assert parse_chat_request(b'{"message": "hi"}') == "hi"
    full = parse_chat_fields(json.dumps({"message": "q", "documents": ["a", "b"], "customer": "C-1002"}).encode())
    assert full.documents == ("a", "b") and full.customer == "C-1002"


@pytest.mark.parametrize(
    "body",
    [
        {"message": "q", "documents": "not a list"},
        {"message": "q", "documents": [1]},
        {"message": "q", "documents": ["x"] * 9},
        {"message": "q", "customer": "C-9999"},
        {"message": "q", "customer": 1001},
        {"message": "q", "documents": ["x" * 40_000]},
    ],
)
def test_bad_optional_fields_are_rejected(body):
    with pytest.raises(RequestError):
        parse_chat_fields(json.dumps(body).encode())


def test_server_passes_documents_and_customer_to_the_bot():
    import urllib.request

    bot = SupportBot(ReferenceModel(), secret=SECRET)
    with serving(bot) as server:

        def ask(payload):
            request = urllib.request.Request(
                server.chat_url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request) as response:
                return json.load(response)

        assert ask({"message": "Where is my order?", "customer": "C-1003"}) == {
            "reply": "Your order BB-20399: Cargo 700 e-bike, delayed at the warehouse, new date 14 March."
        }
        reply = ask({"message": "How far did the battery last?", "documents": ["The battery lasted 70 km."]})
        assert "70 km" in reply["reply"]
        assert set(ask({"message": "What are your store hours?"})) == {"reply"}
