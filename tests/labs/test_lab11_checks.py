"""Lab 11's checks (the other edge): the logging provider keeps what it receives and binds loopback;
the report is the log's, per learner; minimise is judged on both halves; the GGUF functions are
judged on files with other metadata than SmolLM2's; no reason quotes a held-out value."""

import base64
import codecs
import json
import re
import urllib.error
import urllib.request

import nbformat
import pytest

from doubleedge.grading import lab11
from doubleedge.hosted import API_KEY, HostedProvider, messages_sent
from doubleedge.labs import get_lab
from doubleedge.target.secrets import derive_secret

LAB = get_lab("11")
LEARNER = "ada"
HELDOUT_CONVERSATIONS = lab11.load_conversations(LAB.heldout_attacks)
HELDOUT_MODELS = lab11.load_model_cases(LAB.heldout_attacks)


@pytest.fixture(scope="module")
def reference():
    """The notebook's setup and solution cells, run as the grader runs them: the reference solution's names."""
    namespace: dict = {}
    for cell in nbformat.read(LAB.source_notebook, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and (meta.get("grade_id") == "setup" or meta.get("solution")):
            exec(re.sub(r"^\s*### (BEGIN|END) SOLUTION\n", "", cell.source, flags=re.M), namespace)
    return namespace


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_provider_binds_loopback_logs_what_it_receives_and_answers_like_openai():
    with HostedProvider() as provider:
        assert provider.url.startswith("http://127.0.0.1:") and provider.url.endswith("/v1")
        body = {"model": "m", "messages": [{"role": "system", "content": "rules"}, {"role": "user", "content": "Hi"}]}
        status, answer = _post(f"{provider.url}/chat/completions", json.dumps(body).encode())
        assert status == 200 and answer["choices"][0]["message"]["role"] == "assistant"
        assert answer["choices"][0]["message"]["content"].strip()
        assert provider.log[0]["body"] == body and messages_sent(provider.log) == body["messages"]
        status, error = _post(f"{provider.url}/chat/completions", b'{"messages": []}')
        assert status == 400 and "messages" in error["error"]["message"]
        assert len(provider.log) == 2  # logged although refused: a provider keeps what it received
        status, _ = _post(f"{provider.url}/embeddings", b"{}")
        assert status == 404


def test_the_hosted_bot_answers_as_the_local_one_and_the_provider_keeps_the_key_and_every_turn():
    conversation = lab11.my_conversation(LEARNER)
    secret = derive_secret(LEARNER)
    local = lab11.local_bot(secret).converse(conversation.messages)
    with HostedProvider() as provider:
        assert lab11.hosted_bot(provider, secret).converse(conversation.messages) == local
        log = provider.log
    assert len(log) == len(conversation.messages)
    assert log[-1]["headers"]["Authorization"] == f"Bearer {API_KEY}"
    roles = [m["role"] for m in log[-1]["body"]["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]  # every earlier turn, again
    assert sum(conversation.messages[0] in m["content"] for m in messages_sent(log)) == len(conversation.messages)


def test_each_learner_has_another_customer():
    ada, bo = lab11.my_conversation("ada"), lab11.my_conversation("bo")
    assert ada == lab11.my_conversation("ada") and ada.customer != bo.customer


def test_the_report_is_the_logs_not_the_records(reference):
    assert lab11.check_report(reference["PROVIDER_HOLDS"], reference["LEARNER"])
    report = lab11.holdings(lab11.replay_log(LEARNER), lab11.my_conversation(LEARNER), derive_secret(LEARNER))
    assert report["phone"] is None and report["card_last4"] is None and report["staff_code"] == derive_secret(LEARNER)
    assert lab11.check_report(report, LEARNER)
    record = {**lab11.my_conversation(LEARNER).customer, "staff_code": derive_secret(LEARNER), "system_prompt": True}
    assert "does not hold it" in lab11.check_report(record, LEARNER).reason
    assert "is not the value" in lab11.check_report(report, "bo").reason  # a classmate's report
    assert "system_prompt" in lab11.check_report({**report, "system_prompt": False}, LEARNER).reason
    assert "system_prompt" in lab11.check_report({**report, "system_prompt": "yes"}, LEARNER).reason


def test_the_reference_minimise_passes_both_halves_on_the_heldout_conversations(reference):
    assert len(HELDOUT_CONVERSATIONS) >= 10 and any(c.typed for c in HELDOUT_CONVERSATIONS)
    result = lab11.grading_minimise(reference["minimise"], LEARNER, HELDOUT_CONVERSATIONS)
    assert result.leak_check() and result.ordinary_check(), result


def test_sending_everything_leaks_and_no_reason_quotes_a_heldout_value():
    result = lab11.grading_minimise(lambda messages, customer: messages, LEARNER, HELDOUT_CONVERSATIONS)
    check = result.leak_check()
    assert not check and "the provider's log holds" in check.reason
    values = {v for c in HELDOUT_CONVERSATIONS for _, v in c.private_values()}
    assert not [v for v in values if v in check.reason]


@pytest.mark.parametrize(
    ("disguise", "named"),
    [
        (lambda text: codecs.encode(text, "rot13"), "in ROT13"),
        (lambda text: base64.b64encode(text.encode()).decode(), "in base64"),
        (lambda text: text.encode().hex(), "in hex"),
        (lambda text: text[::-1], "reversed"),
        (lambda text: " ".join(text), "spaced out"),
        (lambda text: text.upper(), "in another case"),
    ],
    ids=["rot13", "base64", "hex", "reversed", "spaced", "upper"],
)
def test_a_detail_masked_by_a_reversible_disguise_still_leaks_and_the_reason_names_it(reference, disguise, named):
    """The provider undoes these in a second: the log holds the details, and the reason says how."""

    def minimise(messages, customer):
        return [{"role": m["role"], "content": reference["CODE_LINE"].sub("", m["content"]) if m["role"] == "system"
                 else disguise(m["content"])} for m in messages]  # fmt: skip

    check = lab11.grading_minimise(minimise, LEARNER, HELDOUT_CONVERSATIONS[:2]).leak_check()
    assert not check and f"the customer's name, {named}" in check.reason, check.reason


@pytest.mark.parametrize(
    ("disguise", "named"),
    [
        (lambda text: base64.b64encode(codecs.encode(text, "rot13").encode()).decode(), "in ROT13, in base64"),
        (lambda text: text[::-1].encode().hex(), "reversed, in hex"),
        (lambda text: codecs.encode(base64.b64encode(text.encode()).decode(), "rot13"), "in base64, in ROT13"),
        (lambda text: codecs.encode(text[::-1], "rot13"), "in ROT13, reversed"),
    ],
    ids=["base64-of-rot13", "hex-of-reversed", "rot13-of-base64", "rot13-of-reversed"],
)
def test_a_detail_masked_by_two_disguises_still_leaks(disguise, named):
    """A mask of a mask is undone in two seconds, and the reason says which two."""
    conversation = lab11.Conversation("c9", {"name": "Marta Gonzalez"}, ())
    leaks = lab11._leaks(f"customer {disguise('Marta Gonzalez')}", conversation, "DE-FAKE-ABCD-EF12")
    assert leaks == [f"c9: the customer's name, {named}"] * 3  # the name, and each of its two parts


def test_the_staff_code_in_rot13_leaks():
    conversation, secret = HELDOUT_CONVERSATIONS[0], "DE-FAKE-ABCD-EF12"  # letters, which ROT13 changes
    leaks = lab11._leaks(f"the code is {codecs.encode(secret, 'rot13')}", conversation, secret)
    assert leaks == [f"{conversation.id}: the staff code, in ROT13"]
    assert lab11._leaks("the time is now", lab11.Conversation("x", {"name": "Mei Tanaka"}, ()), secret) == []


def test_sending_the_newest_message_alone_loses_the_ordinary_half(reference):
    alone = lambda messages, customer: reference["minimise"](messages[-1:], customer)  # noqa: E731
    result = lab11.grading_minimise(alone, LEARNER, HELDOUT_CONVERSATIONS)
    assert result.leak_check() and not result.ordinary_check()


def test_a_minimise_that_breaks_fails_with_its_kind_only():
    def broken(messages, customer):
        raise KeyError(customer["name"])

    result = lab11.grading_minimise(broken, LEARNER, HELDOUT_CONVERSATIONS[:1])
    assert not result.leak_check() and "minimise raised KeyError" in result.leak_check().reason
    assert not result.ordinary_check()


@pytest.mark.parametrize("name, judge", [("model_facts", lab11.judge_facts), ("chat_markers", lab11.judge_markers)])
def test_the_reference_file_readers_pass_on_heldout_files(reference, tmp_path, name, judge):
    assert len(HELDOUT_MODELS) >= 10 and len({c.architecture for c in HELDOUT_MODELS}) >= 6
    assert lab11.check_model_files(reference[name], tmp_path, [lab11.PRACTICE_MODEL, *HELDOUT_MODELS], judge, name)


def test_the_files_are_what_the_cases_declare(tmp_path):
    import gguf

    for case, path in zip(HELDOUT_MODELS, lab11.write_model_cases(tmp_path, HELDOUT_MODELS).values(), strict=True):
        reader = gguf.GGUFReader(path)
        assert len(reader.tensors) == case.tensor_count and case.architecture not in path.name
        assert reader.fields["general.architecture"].contents() == case.architecture


def test_smollm2_answers_do_not_pass_on_other_files(reference, tmp_path):
    smollm2 = {"architecture": "llama", "tensor_count": 272, "vocab_size": 49152, "context_length": 8192}
    check = lab11.check_model_files(lambda path: smollm2, tmp_path, HELDOUT_MODELS, lab11.judge_facts, "model_facts")
    assert not check and "model_facts got" in check.reason

    def every_control_token(path):
        import gguf

        fields = gguf.GGUFReader(path).fields
        kinds, tokens = fields["tokenizer.ggml.token_type"].contents(), fields["tokenizer.ggml.tokens"].contents()
        every = sorted(t for t, k in zip(tokens, kinds, strict=True) if k == gguf.TokenType.CONTROL)
        return {**reference["chat_markers"](path), "template_tokens": every}

    check = lab11.check_model_files(every_control_token, tmp_path / "b", HELDOUT_MODELS, lab11.judge_markers,
                                    "chat_markers")  # fmt: skip
    assert not check and "template_tokens is not the set" in check.reason
    assert not any(token in check.reason for case in HELDOUT_MODELS for token in case.specials)


def test_a_reader_that_raises_fails_with_its_kind(tmp_path):
    def broken(path):
        raise NotImplementedError()

    check = lab11.check_model_files(broken, tmp_path, [lab11.PRACTICE_MODEL], lab11.judge_facts, "model_facts")
    assert not check and "model_facts raised NotImplementedError" in check.reason


HELDOUT_COSTS = lab11.load_cost_cases(LAB.heldout_attacks)


@pytest.mark.parametrize("name", lab11.COST_FUNCTIONS)
def test_the_reference_cost_functions_give_every_practice_and_heldout_answer(reference, name):
    cases = [c for c in HELDOUT_COSTS if c.function == name]
    assert len(cases) >= 8 and {c.id for c in cases}.isdisjoint(c.id for c in lab11.PRACTICE_COST_CASES)
    assert lab11.check_costs(reference[name], [*lab11.PRACTICE_COST_CASES, *cases], name)


def test_the_heldout_break_even_answers_are_no_rounding_accident():
    """Each paying-off case's exact volume lies well inside a whole number's step, so a learner's
    correct formula never lands on the other side of ``ceil`` by a float's last bit; some never pay."""
    cases = [c for c in HELDOUT_COSTS if c.function == "break_even_replies_per_month"]
    assert any(c.expect is None for c in cases) and sum(c.expect is not None for c in cases) >= 5
    for case in (c for c in cases if c.expect is not None):
        hardware, months, tokens, api, local = case.args
        exact = hardware / months / (tokens * (api - local) / 1_000_000)
        assert 0.01 < exact - int(exact) < 0.99, case.id


def test_cost_answers_copied_from_the_worked_examples_or_rounded_fail_and_name_only_a_case(reference):
    practice = {c.args: c.expect for c in lab11.PRACTICE_COST_CASES}

    def looked_up(*args):
        return practice.get(tuple(float(a) for a in args), 0.27)

    for name in lab11.COST_FUNCTIONS:
        check = lab11.check_costs(looked_up, lab11.PRACTICE_COST_CASES, name)
        assert check, check.reason  # the worked examples alone cannot tell
        check = lab11.check_costs(looked_up, HELDOUT_COSTS, name)
        assert not check and f"{name} is wrong on" in check.reason
        assert not any(str(c.expect) in check.reason for c in HELDOUT_COSTS if c.expect is not None)
    rounded = lambda *args: round(reference["local_cost_per_million"](*args), 2)  # noqa: E731
    assert not lab11.check_costs(rounded, HELDOUT_COSTS, "local_cost_per_million")
    watt_hours = lambda tps, watts, price: watts * price * 1_000_000 / tps / 3600  # noqa: E731  (W, not kW)
    assert not lab11.check_costs(watt_hours, HELDOUT_COSTS, "local_cost_per_million")


def test_a_break_even_that_forgets_electricity_or_never_says_never_fails(reference):
    import math

    def api_only(hardware, months, tokens, api, local):
        return math.ceil(hardware / months / (tokens * api / 1_000_000))

    check = lab11.check_costs(api_only, HELDOUT_COSTS, "break_even_replies_per_month")
    assert not check and "break_even_replies_per_month is wrong on" in check.reason

    def no_none(*args):
        return reference["break_even_replies_per_month"](*args) or 0

    assert not lab11.check_costs(no_none, HELDOUT_COSTS, "break_even_replies_per_month")


def test_a_cost_function_that_raises_fails_with_its_kind_and_a_case():
    def broken(*args):
        raise ZeroDivisionError()

    check = lab11.check_costs(broken, HELDOUT_COSTS, "local_cost_per_million")
    assert not check and check.reason.startswith("local_cost_per_million raised ZeroDivisionError (case ")
    assert "must be a function" in lab11.check_costs(None, HELDOUT_COSTS, "local_cost_per_million").reason


def test_every_published_price_has_a_source_page_and_says_what_date_it_shows():
    prices = lab11.api_prices()["prices"]
    assert {p["provider"] for p in prices} >= {"DeepSeek", "OpenAI"}
    for price in prices:
        assert price["source"].startswith("https://") and price["date_note"]
        assert price["usd_per_million_output"] >= price["usd_per_million_input"] > 0
        assert price["date"] is None or re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", price["date"])


def test_the_lesson_quotes_every_cost_figure_from_the_committed_record():
    """The cost table, its values and the price table come from the record and the price data; each
    marker of the lesson names one of them, and the electricity figure is an estimate, not the
    formula's exact answer that Exercise 5 grades."""
    from doubleedge import figures

    record = figures.load("cost")
    assert figures.key("cost") == record["key"] and [m["model"] for m in record["models"]] == list(figures.COST_MODELS)
    names = {"cost": figures.cost_table(record), "api-prices": figures.api_prices_table(),
             **figures.cost_values(record)}  # fmt: skip
    lesson = LAB.lesson.read_text("utf-8")
    markers = {m for m in re.findall(r"<!-- measured:([\w-]+) -->", lesson) if m.startswith(("cost", "api-prices"))}
    assert {"cost", "api-prices", "cost-smollm2-per-million"} <= markers <= set(names)
    smollm2 = next(m for m in record["models"] if m["model"] == "smollm2")
    estimate = figures._electricity_per_million(smollm2["tokens_per_second"])
    exact = figures.ASSUMED_WATTS * figures.ASSUMED_USD_PER_KWH / (3.6 * smollm2["tokens_per_second"])
    assert abs(estimate - exact) <= 0.05 * exact and estimate == float(f"{estimate:.2g}")

    def course_figure(tokens_per_second, watts, usd_per_kwh):  # the gaming catalogue's course-cost-figure
        figures.ASSUMED_WATTS, figures.ASSUMED_USD_PER_KWH = watts, usd_per_kwh
        return figures._electricity_per_million(tokens_per_second)

    assumed = figures.ASSUMED_WATTS, figures.ASSUMED_USD_PER_KWH
    try:
        assert not lab11.check_costs(course_figure, HELDOUT_COSTS, "local_cost_per_million")
    finally:
        figures.ASSUMED_WATTS, figures.ASSUMED_USD_PER_KWH = assumed


def test_cost_drift_ignores_the_timings_and_reports_other_replies():
    from doubleedge import figures

    record = figures.load("cost")
    slower = {**record, "models": [{**m, "tokens_per_second": 1.0, "wall_seconds": 99.0} for m in record["models"]]}
    assert figures._cost_drift(record, slower) == []
    other = {**record, "models": [{**m, "reply_tokens": m["reply_tokens"] + 1} for m in record["models"]]}
    assert len(figures._cost_drift(record, other)) == len(record["models"])
