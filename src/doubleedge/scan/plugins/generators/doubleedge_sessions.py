"""A garak generator that plays a whole conversation in one session of the course's bot.

Loaded as ``garak.generators.doubleedge_sessions`` by ``doubleedge.scan.launch``; target
type ``doubleedge_sessions.SessionChat`` with the option ``uri`` (the server's base URL,
``http://127.0.0.1:PORT``). garak's own ``rest`` generator sends only the last message.
The output is the last reply; every reply of the conversation is in its notes (``replies``),
for a detector that reads the conversation (``doubleedge.ConversationLeak``).
"""

import logging

from garak import _config
from garak.attempt import Conversation, Message
from garak.generators.base import Generator

from doubleedge.scan.conversations import SessionAPIError, play


class SessionChat(Generator):
    """Sends each user turn of the prompt to ``/chat`` in a new session; the last reply is the output."""

    DEFAULT_PARAMS = Generator.DEFAULT_PARAMS | {"uri": None, "request_timeout": 120}
    generator_family_name = "doubleedge"
    supports_multiple_generations = False
    parallel_capable = False

    def __init__(self, name="", config_root=_config):
        super().__init__(name, config_root=config_root)
        if not self.uri:
            raise ValueError("doubleedge_sessions.SessionChat needs the generator option uri")

    def _call_model(self, prompt: Conversation, generations_this_call: int = 1) -> list[Message | None]:
        turns = [turn.content.text for turn in prompt.turns if turn.role == "user"]
        try:
            replies = play(self.uri, turns, timeout=self.request_timeout)
        except SessionAPIError as exc:  # garak records no output for this prompt and goes on
            logging.error("doubleedge_sessions: %s", exc)
            return [None]
        return [Message(replies[-1], notes={"replies": replies})]
