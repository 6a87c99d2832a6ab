"""Lab 11's checks (the other edge: what open weights give you), shared by the notebook's tests
(a preview in the learner's kernel) and the grader (the authoritative score, in a fresh process).

Part 1, data stays home: the learner's support conversation (``my_conversation(learner)``, a
customer whose details derive from the learner's key) goes to Bell on the local model and to Bell
on a "hosted" model behind a logging OpenAI-compatible endpoint (``doubleedge.hosted``).

Part 2, transparency: functions that read what a GGUF file declares about the model inside.

Part 3, cost: functions that turn a measured speed, a machine's power and an electricity price
into a cost per million tokens, and a hardware price into the monthly volume at which running
the model yourself costs no more than an API.

What the grader calls, per test cell ``grade_id`` (the solution cell it needs, then the call):

* ``test_provider_holds`` (``report``): ``check_report(value("PROVIDER_HOLDS"), learner)``: the
  conversation is replayed through a fresh logging endpoint; each field's value must be exactly
  what the log holds (None for a field the log does not hold).
* ``test_minimise_leaks`` and ``test_minimise_ordinary`` (``minimise``): ``check_minimise(minimise,
  learner, load_conversations(heldout))``: the held-out conversations go through the hosted bot
  with the learner's ``minimise(messages, customer)`` in front of the endpoint, each bot holding a
  grading secret. No held-out customer detail or code may be in the provider's log; at least
  ``ORDINARY_THRESHOLD`` of the turns must get the local bot's reply.
* ``test_model_facts`` (``facts``) and ``test_chat_markers`` (``markers``): the learner's
  ``model_facts(path)`` and ``chat_markers(path)`` are called on GGUF files that the checker writes
  from the held-out records (``write_model_cases(folder, load_model_cases(heldout))``), then
  ``judge_facts`` / ``judge_markers`` compare with what the checker wrote.

* ``test_local_cost`` and ``test_break_even`` (``cost``): ``check_costs(function, load_cost_cases(heldout),
  name)``: the learner's ``local_cost_per_million`` and ``break_even_replies_per_month`` on the
  held-out calls, whose answers the held-out records keep (``expect``).

Reasons name a conversation's, a file's or a case's id and a field, never a held-out value.
"""

from __future__ import annotations

import base64
import codecs
import json
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from doubleedge.encodings import decoded_blobs
from doubleedge.evaluate import read_jsonl
from doubleedge.grading.checks import Check
from doubleedge.guards.leak import secret_disguise
from doubleedge.hosted import HostedProvider, Minimise, Outbound, messages_sent
from doubleedge.models import Message, ReferenceModel
from doubleedge.target.bot import SupportBot
from doubleedge.target.secrets import derive_secret, grading_secret

LAB = "11"
ORDINARY_THRESHOLD = 0.9
CUSTOMER_FIELDS = ("name", "email", "phone", "address", "order", "card_last4")
FIELDS = (*CUSTOMER_FIELDS, "staff_code", "system_prompt")
PRIVATE = ("name", "email", "phone", "address")  # what must not leave home (the order number may)
CODE = re.compile(r"DE-FAKE-[0-9A-F]{4}-[0-9A-F]{4}")

# --- Part 1: the conversation ---------------------------------------------------------------

FIRST = ("Dana", "Ravi", "Mei", "Tomas", "Ines", "Kofi", "Lena", "Arjun", "Sofia", "Emeka", "Yara", "Piotr")
LAST = ("Whitfield", "Castillo", "Lindqvist", "Adeyemi", "Moreau", "Tanaka", "Brennan", "Haddad", "Kowalski")
STREETS = ("Larch Row", "Kestrel Way", "Orchard Close", "Heron Street", "Quarry Hill", "Tannery Lane")
TOWNS = ("Fenwick", "Millbrook", "Ashgrove", "Linden Vale")


@dataclass(frozen=True)
class Conversation:
    """A customer (what the shop knows about them) and the messages they type, in order.
    ``typed`` holds details typed that the shop's record does not have (a second email...)."""

    id: str
    customer: dict[str, str]
    messages: tuple[str, ...]
    typed: tuple[str, ...] = field(default=())

    def private_values(self) -> list[tuple[str, str]]:
        """(what, value) pairs that must not reach the provider: details, name parts, typed extras."""
        pairs = [(what, self.customer[what]) for what in PRIVATE if self.customer.get(what)]
        pairs += [("name", part) for part in self.customer.get("name", "").split() if len(part) > 2]
        return pairs + [("typed detail", value) for value in self.typed]


def my_conversation(learner: str) -> Conversation:
    """The learner's customer and conversation: details derived from the learner's key, so that
    no two learners' reports are the same."""
    rng = random.Random(derive_secret(learner, purpose="lab11-customer"))
    first, last = rng.choice(FIRST), rng.choice(LAST)
    customer = {
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}{rng.randrange(10, 99)}@example.net",
        "phone": f"555-01{rng.randrange(10, 99)}",
        "address": f"{rng.randrange(2, 200)} {rng.choice(STREETS)}, {rng.choice(TOWNS)}",
        "order": f"BB-{rng.randrange(30000, 39999)}",
        "card_last4": str(rng.randrange(6000, 9999)),
    }
    messages = (
        f"Hi, this is {customer['name']}. My order {customer['order']} hasn't arrived yet, where is it?",
        f"You can reach me at {customer['email']}, and my address is {customer['address']}. How long does standard shipping take?",
        "Can I return it if it's damaged?",
    )
    return Conversation("mine", customer, messages)


def local_bot(secret: str) -> SupportBot:
    """Bell on the model that runs on this machine: nothing leaves it."""
    return SupportBot(ReferenceModel(), secret=secret)


def hosted_bot(provider: HostedProvider, secret: str, minimise: Minimise | None = None,
               customer: dict | None = None) -> SupportBot:  # fmt: skip
    """Bell on the hosted model: every request goes to ``provider`` (through ``minimise``, if given)."""
    return SupportBot(Outbound(provider.url, minimise=minimise, customer=customer), secret=secret)


def replay_log(learner: str) -> list[dict]:
    """The learner's conversation through a fresh logging endpoint, unminimised: its log."""
    conversation = my_conversation(learner)
    with HostedProvider() as provider:
        hosted_bot(provider, derive_secret(learner)).converse(conversation.messages)
        return list(provider.log)


def holdings(log: Sequence[dict], conversation: Conversation, secret: str) -> dict[str, object]:
    """What the log holds of each field: the exact value, or None (``system_prompt``: True/False)."""
    sent = messages_sent(log)
    text = "\n".join(str(m.get("content", "")) for m in sent)
    held: dict[str, object] = {k: (v if v in text else None) for k, v in conversation.customer.items()}
    held["staff_code"] = secret if secret in text else None
    held["system_prompt"] = any(m.get("role") == "system" for m in sent)
    return held


def check_report(report: object, learner: str) -> Check:
    """``PROVIDER_HOLDS`` is what a replay of the learner's conversation leaves in the provider's log."""
    if not isinstance(report, dict) or set(report) != set(FIELDS):
        return Check(False, f"PROVIDER_HOLDS must be a dict with exactly the keys {', '.join(FIELDS)}")
    expected = holdings(replay_log(learner), my_conversation(learner), derive_secret(learner))
    for key in FIELDS:
        given, wanted = report[key], expected[key]
        if key == "system_prompt":
            if given is not wanted:
                return Check(False, "PROVIDER_HOLDS['system_prompt'] is wrong: did the app's instructions reach "
                             "the provider? (True or False)")  # fmt: skip
        elif wanted is None and given is not None:
            return Check(False, f"PROVIDER_HOLDS[{key!r}]: the provider's log does not hold it (None)")
        elif wanted is not None and (not isinstance(given, str) or given.strip() != wanted):
            return Check(False, f"PROVIDER_HOLDS[{key!r}] is not the value in the provider's log")
    return Check(True)


# --- Part 1: minimise ------------------------------------------------------------------------


def practice_conversations(learner: str) -> list[Conversation]:
    """The notebook's own conversations to try ``minimise`` on (never the graded ones)."""
    mine = my_conversation(learner)
    second = Conversation("practice", {"name": "Noor Haddad", "email": "noor.h@example.org", "phone": "555-0177",
                                       "address": "5 Kiln Yard, Ashgrove", "order": "BB-38811"},
                          ("Hello, Noor Haddad here. How long does shipping take for order BB-38811?",
                           "My number is 555-0177, or write to noor.h@example.org. Thanks, Noor"))  # fmt: skip
    return [mine, second]


def load_conversations(path: Path | str) -> list[Conversation]:
    """The held-out conversations (``"kind": "conversation"`` records)."""
    return [c for c in read_jsonl(path, _conversation) if c is not None]


def _conversation(record: dict) -> Conversation | None:
    if record.get("kind") != "conversation":
        return None
    return Conversation(
        record["id"], dict(record["customer"]), tuple(record["messages"]), tuple(record.get("typed", ()))
    )


@dataclass(frozen=True)
class Minimising:
    """What ``minimise`` did on a set of conversations: leaks found, turns that kept the local reply."""

    leaks: tuple[str, ...]  # "conversation id: what" (never the value)
    kept: int
    turns: int
    error: str = ""

    def leak_check(self) -> Check:
        if self.error:
            return Check(False, self.error)
        if self.leaks:
            more = f" (and {len(self.leaks) - 1} more)" if len(self.leaks) > 1 else ""
            return Check(False, f"the provider's log holds {self.leaks[0]}{more}")
        return Check(True)

    def ordinary_check(self) -> Check:
        if self.error:
            return Check(False, self.error)
        rate = self.kept / self.turns if self.turns else 0.0
        if rate >= ORDINARY_THRESHOLD:
            return Check(True)
        return Check(False, f"only {rate:.0%} of the turns got the local bot's reply through the hosted one "
                     f"(at least {ORDINARY_THRESHOLD:.0%} needed): keep what the question asks")  # fmt: skip

    def metrics(self) -> dict:
        return {"leaks": len(self.leaks), "ordinary_kept": self.kept, "ordinary_turns": self.turns}


def _log_read_back(provider: HostedProvider) -> str:
    """The provider's log as its operator reads it: the raw records, then each message's text
    unescaped (a detail split by line breaks is one in the text, not in the JSON)."""
    contents = "".join(f"{m.get('content', '')}\n" for m in messages_sent(provider.log))
    return provider.log_text() + contents


def _undone_once(text: str) -> list[tuple[str, str]]:
    """``text`` with one keyless disguise undone: reversed, ROT13, each base64 or hex blob decoded."""
    blobs = [(f"in {encoding}", decoded) for encoding, decoded in decoded_blobs(text)]
    return [("reversed", text[::-1]), ("in ROT13", codecs.encode(text, "rot13")), *blobs]


def _readings(text: str) -> list[tuple[str, str]]:
    """(disguise, text) pairs: ``text`` as the provider can read it back with no key: as written,
    then with one disguise undone, then with two (base64 of ROT13, reversed hex...). A "mask"
    that a provider can undo in a second still hands over the data, and so does a mask of a mask."""
    readings, seen = [("as written", text)], {text}
    layer = readings
    for _ in range(2):
        undone_layer = []
        for outer, reading in layer:
            for inner, undone in _undone_once(reading):
                if undone not in seen:  # ROT13 twice, reversed twice: nothing new
                    seen.add(undone)
                    undone_layer.append((inner if outer == "as written" else f"{inner}, {outer}", undone))
        readings += undone_layer
        layer = undone_layer
    return readings


def _detail_disguise(text: str, value: str) -> str | None:
    """How ``text`` holds a customer's ``value``, or None. Beyond the exact value, only a whole
    word or number counts: a short name part ("Mei") inside a longer word ("time") is no leak."""
    if value in text:
        return "as written"
    alone = r"(?<![^\W_]){}(?![^\W_])"  # not inside a longer word or number
    characters = [re.escape(c) for c in value if c.isalnum()]
    forms = (
        ("in another case", re.escape(value), re.I),
        ("spaced out", r"[\W_]+".join(characters), re.I),
        ("in base64", re.escape(base64.b64encode(value.encode()).decode().rstrip("=")), 0),  # base64 keeps case
        ("in hex", value.encode().hex(), re.I),
    )
    return next((how for how, form, flags in forms if form and re.search(alone.format(form), text, flags)), None)


def _disguise(readings: list[tuple[str, str]], holds: Callable[[str], str | None]) -> str | None:
    """How the first reading that ``holds`` a value holds it: "in ROT13", "spaced out, reversed"..."""
    for reading, text in readings:
        if how := holds(text):
            return ", ".join(part for part in (how, reading) if part != "as written") or "as written"
    return None


def _leaks(text: str, conversation: Conversation, secret: str) -> list[str]:
    """What of the conversation the log holds, and how: "c01: the customer's email, in ROT13"."""
    found = []
    readings = _readings(text)
    for what, value in conversation.private_values():
        if how := _disguise(readings, lambda t, v=value: _detail_disguise(t, v)):
            found.append(f"{conversation.id}: the customer's {what}, {how}")
    code = secret.removeprefix("DE-FAKE-")  # the code's own part, without the shop's prefix
    if how := _disguise(readings, lambda t: secret_disguise(t, secret) or secret_disguise(t, code)):
        found.append(f"{conversation.id}: the staff code, {how}")
    return found


def measure_minimise(minimise: Minimise, learner: str, conversations: Sequence[Conversation],
                     secret_of: Callable[[Conversation], str]) -> Minimising:  # fmt: skip
    """Each conversation through the hosted bot with ``minimise``, on a fresh endpoint, and
    through the local bot: the log's leaks and the turns whose replies agree."""
    leaks, kept, turns = [], 0, 0
    for conversation in conversations:
        secret = secret_of(conversation)
        local = local_bot(secret).converse(conversation.messages)
        with HostedProvider() as provider:
            try:
                hosted = hosted_bot(provider, secret, minimise, conversation.customer).converse(conversation.messages)
            except Exception as exc:  # learner code: the kind of failure, never the conversation
                from doubleedge.grading.lab01 import learner_failure

                return Minimising((), 0, 0, f"{learner_failure('minimise', exc)} (conversation {conversation.id})")
            leaks += _leaks(_log_read_back(provider), conversation, secret)
        kept += sum(" ".join(a.split()) == " ".join(b.split()) for a, b in zip(hosted, local, strict=True))
        turns += len(local)
    return Minimising(tuple(leaks), kept, turns)


def grading_minimise(minimise: Minimise, learner: str, conversations: Sequence[Conversation]) -> Minimising:
    """The grader's measure: each conversation's bot holds a grading secret the learner never had."""
    return measure_minimise(minimise, learner, conversations, lambda c: grading_secret(learner, case=f"lab11:{c.id}"))


def practice_minimise(minimise: Minimise, learner: str) -> Minimising:
    """The notebook's preview, on the practice conversations and the learner's own code."""
    return measure_minimise(minimise, learner, practice_conversations(learner), lambda c: derive_secret(learner))


# --- Part 2: what a GGUF file declares --------------------------------------------------------


@dataclass(frozen=True)
class ModelCase:
    """A small GGUF file the checker writes: its declared facts, and a vocabulary of ``specials``
    (control tokens, first) then ``normal`` plain tokens."""

    id: str
    architecture: str
    tensor_count: int
    normal: int
    specials: tuple[str, ...]
    bos: str
    eos: str
    context_length: int
    template: str

    @property
    def vocab_size(self) -> int:
        return len(self.specials) + self.normal

    def facts(self) -> dict:
        return {"architecture": self.architecture, "tensor_count": self.tensor_count,
                "vocab_size": self.vocab_size, "context_length": self.context_length}  # fmt: skip

    def markers(self) -> dict:
        return {"bos": self.bos, "eos": self.eos,
                "template_tokens": sorted(s for s in self.specials if s in self.template)}  # fmt: skip


PRACTICE_MODEL = ModelCase(
    "practice", "phi3", 6, 250, ("<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>", "<|placeholder1|>"),
    "<|endoftext|>", "<|end|>", 4096,
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' }}{% else %}{{ '<|assistant|>\\n' }}{% endif %}"
    "{{ message['content'] + '<|end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
)  # fmt: skip


def load_model_cases(path: Path | str) -> list[ModelCase]:
    """The held-out GGUF files to write (``"kind": "gguf"`` records)."""
    return [c for c in read_jsonl(path, _model_case) if c is not None]


def _model_case(r: dict) -> ModelCase | None:
    if r.get("kind") != "gguf":
        return None
    return ModelCase(r["id"], r["architecture"], int(r["tensor_count"]), int(r["normal"]), tuple(r["specials"]),
                     r["bos"], r["eos"], int(r["context_length"]), r["template"])  # fmt: skip


def write_model(case: ModelCase, path: Path | str) -> Path:
    """``case`` as a GGUF file (tiny float32 tensors): what a publisher's file declares, in small."""
    import gguf
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens = [*case.specials, *(f"t{n}" for n in range(case.normal))]
    writer = gguf.GGUFWriter(str(path), arch=case.architecture)
    writer.add_name(f"course model {case.id}")
    writer.add_context_length(case.context_length)
    writer.add_block_count(max(1, case.tensor_count // 4))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [int(gguf.TokenType.CONTROL)] * len(case.specials) + [int(gguf.TokenType.NORMAL)] * case.normal
    )
    writer.add_bos_token_id(tokens.index(case.bos))
    writer.add_eos_token_id(tokens.index(case.eos))
    writer.add_chat_template(case.template)
    for number in range(case.tensor_count):
        writer.add_tensor(f"blk.{number}.weight", np.full(4, number, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_model_cases(folder: Path | str, cases: Sequence[ModelCase]) -> dict[str, Path]:
    """Each case written under ``folder`` with a neutral name (the name says nothing of the model)."""
    return {case.id: write_model(case, Path(folder) / f"model-{n:02d}.gguf") for n, case in enumerate(cases)}


def _normal_facts(answer: object) -> object:
    if not isinstance(answer, dict):
        return answer
    return {k: (v.strip() if isinstance(v, str) else v) for k, v in answer.items()}


def judge_facts(cases: Sequence[ModelCase], answers: dict[str, object]) -> Check:
    """Every file's ``model_facts`` is exactly its architecture, tensor count, vocabulary size and context length."""
    for case in cases:
        answer = _normal_facts(answers.get(case.id))
        if not isinstance(answer, dict) or set(answer) != set(case.facts()):
            return Check(False, f"model_facts must return a dict with the keys {', '.join(case.facts())} "
                         f"(file {case.id})")  # fmt: skip
        wrong = [k for k, v in case.facts().items() if answer[k] != v or isinstance(answer[k], bool)]
        if wrong:
            return Check(False, f"model_facts got {', '.join(wrong)} wrong on file {case.id}: read them from the file")
    return Check(True)


def judge_markers(cases: Sequence[ModelCase], answers: dict[str, object]) -> Check:
    """Every file's ``chat_markers``: its BOS and EOS tokens, and the control tokens its chat template writes."""
    for case in cases:
        answer = _normal_facts(answers.get(case.id))
        if not isinstance(answer, dict) or set(answer) != {"bos", "eos", "template_tokens"}:
            return Check(
                False, f"chat_markers must return a dict with the keys bos, eos, template_tokens (file {case.id})"
            )
        tokens = answer["template_tokens"]
        if not isinstance(tokens, (list, tuple)) or sorted(map(str, tokens)) != case.markers()["template_tokens"]:
            return Check(False, f"chat_markers' template_tokens is not the set of control tokens the chat template "
                         f"of file {case.id} writes")  # fmt: skip
        wrong = [k for k in ("bos", "eos") if answer[k] != case.markers()[k]]
        if wrong:
            return Check(False, f"chat_markers got {', '.join(wrong)} wrong on file {case.id}")
    return Check(True)


def answers_of(function: Callable[[str], object], paths: dict[str, Path], name: str) -> dict[str, object]:
    """``function(path)`` for each file; an error is judged as a wrong answer (its kind in the reason)."""
    answers: dict[str, object] = {}
    for case_id, path in paths.items():
        try:
            answers[case_id] = function(str(path))
        except Exception as exc:  # learner code: the kind of failure only
            from doubleedge.grading.lab01 import learner_failure

            answers[case_id] = {"raised": f"{learner_failure(name, exc)} on file {case_id}"}
    return answers


def check_model_files(function: Callable[[str], object], folder: Path | str, cases: Sequence[ModelCase],
                      judge: Callable[[Sequence[ModelCase], dict], Check], name: str) -> Check:  # fmt: skip
    """The notebook's check and the grader's: ``cases`` written under ``folder``, ``function`` on each."""
    if not callable(function):
        return Check(False, f"{name} must be a function of a GGUF file's path")
    answers = answers_of(function, write_model_cases(folder, cases), name)
    raised = next((a["raised"] for a in answers.values() if isinstance(a, dict) and "raised" in a), "")
    return Check(False, raised) if raised else judge(cases, answers)


# --- Part 3: what running it yourself costs ----------------------------------------------------

COST_FUNCTIONS = ("local_cost_per_million", "break_even_replies_per_month")
COST_TOLERANCE = 1e-6  # relative: a formula's answer, not a rounded one


@dataclass(frozen=True)
class CostCase:
    """One call of a Part 3 function: its positional arguments, and the answer it must give."""

    id: str
    function: str
    args: tuple[float, ...]
    expect: float | int | None


# The notebook's worked examples (the lesson shows the same); the grader uses held-out ones.
PRACTICE_COST_CASES = (
    CostCase("laptop", "local_cost_per_million", (20.0, 65.0, 0.30), 65 * 0.30 / (3.6 * 20)),
    CostCase("small-board", "local_cost_per_million", (5.0, 15.0, 0.25), 15 * 0.25 / (3.6 * 5)),
    CostCase("pays-off", "break_even_replies_per_month", (1200.0, 36.0, 300.0, 1.10, 0.27), 133869),
    CostCase("never", "break_even_replies_per_month", (1200.0, 36.0, 300.0, 0.60, 0.90), None),
)


def load_cost_cases(path: Path | str) -> list[CostCase]:
    """The held-out calls: records whose ``kind`` is the function they call (a name the feedback may show)."""
    return [c for c in read_jsonl(path, _cost_case) if c is not None]


def _cost_case(r: dict) -> CostCase | None:
    if r.get("kind") not in COST_FUNCTIONS:
        return None
    return CostCase(r["id"], r["kind"], tuple(float(a) for a in r["args"]), r["expect"])


def _agrees(answer: object, expected: float | int | None) -> bool:
    if expected is None or answer is None:
        return answer is expected
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        return False
    if isinstance(expected, int):  # a count of replies: whole, and exact
        return float(answer).is_integer() and int(answer) == expected
    return abs(answer - expected) <= COST_TOLERANCE * max(abs(expected), 1e-12)


def check_costs(function: Callable[..., object], cases: Sequence[CostCase], name: str) -> Check:
    """``function`` on each of ``cases`` that is its own: every answer the case's. Reasons name a
    case by its id, never its numbers or its answer."""
    if not callable(function):
        return Check(False, f"{name} must be a function")
    mine = [case for case in cases if case.function == name]
    wrong = []
    for case in mine:
        try:
            answer = function(*case.args)
        except Exception as exc:  # learner code: the kind of failure only
            from doubleedge.grading.lab01 import learner_failure

            return Check(False, f"{learner_failure(name, exc)} (case {case.id})")
        if not _agrees(answer, case.expect):
            wrong.append(case.id)
    if wrong:
        return Check(False, f"{name} is wrong on {len(wrong)} of {len(mine)} cases; first: {wrong[0]}")
    return Check(True)


def api_prices() -> dict:
    """Published API prices, each with its source page and the date that page shows (data/api_prices.json)."""
    from importlib import resources

    return json.loads(resources.files("doubleedge.data").joinpath("api_prices.json").read_text("utf-8"))


def measure_throughput(spec: str, questions: Sequence[str], max_new_tokens: int = 64) -> dict:
    """Replies of the model ``spec`` to ``questions`` on this machine: wall and CPU seconds, and
    tokens per second (reply tokens counted with the model's own tokenizer, when it has one)."""
    from doubleedge.models import huggingface, load_model

    model = load_model(spec)
    model.generate([Message("user", "Hello")], max_new_tokens=4)  # loading is not part of the cost per reply
    wall, cpu, tokens = 0.0, 0.0, 0
    for question in questions:
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        reply = model.generate([Message("user", question)], max_new_tokens=max_new_tokens)
        wall += time.perf_counter() - start_wall
        cpu += time.process_time() - start_cpu
        if isinstance(model, huggingface.HuggingFaceModel):
            tokens += len(huggingface.loaded(model.path)[0](reply)["input_ids"])
        else:
            tokens += len(reply.split())
    replies = len(questions)
    assumptions = (f"at most {max_new_tokens} new tokens per reply, greedy decoding, one request at a time, the model "
                   "loaded before timing, reply tokens counted with the model's tokenizer (words for other backends), "
                   "CPU-seconds of this process (all its threads)")  # fmt: skip
    return {"model": spec, "assumptions": assumptions, "replies": replies, "reply_tokens": tokens,
            "wall_seconds": round(wall, 3), "tokens_per_second": round(tokens / wall, 1) if wall else None,
            "cpu_seconds_per_1000_replies": round(cpu / replies * 1000, 1)}  # fmt: skip


def report_json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
