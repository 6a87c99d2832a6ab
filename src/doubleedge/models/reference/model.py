"""The reference model's engine: one ordered list of behaviours, the first answer wins."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from doubleedge.models.base import ChatModel, Message
from doubleedge.models.reference import (
    consumption,
    conversation,
    disclosure,
    documents,
    hallucination,
    helpful,
    hijacking,
    jailbreaks,
    leaking,
    smuggling,
    tools,
    unsafe_output,
)
from doubleedge.models.reference.context import Context, SystemPrompt

Behaviour = Callable[[Context], "str | None"]

# Order matters and is the model's "alignment": like real models, the most recent and
# most specific instruction wins over the system prompt, smuggled and role-played
# requests get past the refusals, and only then does the model do its actual job.
BEHAVIOURS: tuple[Behaviour, ...] = (
    tools.call_tools,
    consumption.start_polling,
    consumption.write_at_length,
    smuggling.decode_smuggled,
    smuggling.unescape_on_request,
    disclosure.share_records,
    jailbreaks.adopt_persona,
    hijacking.follow_override,
    unsafe_output.echo_on_command,
    hijacking.assemble_exfil_link,
    hijacking.follow_embedded,
    documents.obey_documents,
    unsafe_output.include_markup,
    leaking.leak_prompt,
    leaking.diverge_on_repetition,
    jailbreaks.answer_in_another_tense,
    jailbreaks.write_requested_code,
    jailbreaks.refuse_harmful,
    leaking.invent_credentials,
    leaking.guard_secret,
    unsafe_output.explain_ansi,
    unsafe_output.obey_format_threat,
    disclosure.answer_account,
    helpful.check_code,
    hallucination.agree_without_checking,
    documents.answer_from_documents,
    helpful.answer_from_articles,
    hallucination.invent_biography,
)


class ReferenceModel(ChatModel):
    """Deterministic, fast, offline. See the package docstring for what it is and is not."""

    name = "reference"
    behaviours: tuple[Behaviour, ...] = BEHAVIOURS  # a variant (finetune.py) swaps the list, not the engine
    conversation_behaviours: tuple[conversation.MultiTurnBehaviour, ...] = conversation.CONVERSATION_BEHAVIOURS

    def generate(self, messages: Sequence[Message], *, max_new_tokens: int = 256) -> str:
        system = SystemPrompt("\n".join(m.content for m in messages if m.role == "system"))
        user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        polling = consumption.keep_polling(system, messages)  # an agent's loop, before the result is reported
        if polling is not None:
            return polling
        reading = documents.read(system, user)
        earlier = conversation.earlier_exchanges(messages)
        if conversation.in_conversation(earlier, user):
            reply = self._respond_in_conversation(system, earlier, reading)
            if reply is not None:
                return _truncate(reply, max_new_tokens)
        return _truncate(self._respond(system, reading.instructions, 0, reading), max_new_tokens)

    def _respond_in_conversation(
        self, system: SystemPrompt, earlier: tuple[conversation.Exchange, ...], reading: documents.Reading
    ) -> str | None:
        talk = conversation.Conversation(earlier, self._context(system, reading.instructions, 0, reading))
        for behaviour in self.conversation_behaviours:
            reply = behaviour(talk)
            if reply is not None:
                return reply
        return None

    def _context(self, system: SystemPrompt, text: str, depth: int, reading: documents.Reading) -> Context:
        return Context(
            system,
            text,
            depth,
            lambda inner, d: self._respond(system, inner, d, reading),
            documents=reading.documents,
            question=reading.question,
        )

    def _respond(self, system: SystemPrompt, text: str, depth: int, reading: documents.Reading) -> str:
        ctx = self._context(system, text, depth, reading)
        for behaviour in self.behaviours:
            reply = behaviour(ctx)
            if reply is not None:
                return reply
        return helpful.fallback(ctx)


def _truncate(text: str, max_new_tokens: int) -> str:
    words = text.split(" ")
    return text if len(words) <= max_new_tokens else " ".join(words[:max_new_tokens])
