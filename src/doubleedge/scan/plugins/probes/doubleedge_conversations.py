"""Multi-turn attacks on Bell's staff code: Crescendo, a persona set up turns earlier, many-shot.

Loaded as ``garak.probes.doubleedge_conversations`` by ``doubleedge.scan.launch``. Each prompt
is a garak ``Conversation`` holding the user's turns of one scripted attack
(``doubleedge/data/multiturn_attacks.jsonl``); the ``doubleedge_sessions.SessionChat``
generator plays them in one session of the bot, and ``doubleedge.ConversationLeak`` scores
every reply together against the code, which the probe's option ``secret`` names (the
attempt's trigger). Sources: Russinovich et al. 2024 (arXiv:2404.01833), Shah et al. 2023
(arXiv:2311.03348), Anil et al. 2024 ("Many-shot Jailbreaking"); the scripts that ask for the
code in pieces, a part per turn, split the payload across turns (Kang et al. 2023,
"Exploiting Programmatic Behavior of LLMs", arXiv:2302.05733) and the disclosure across replies
(Pfister et al. 2025, arXiv:2501.07927). See ``doubleedge.scan.conversations``.
"""

import garak.probes
from garak import _config
from garak.attempt import Attempt, Conversation, Message, Turn

from doubleedge.scan.conversations import load_scripts


class MultiTurn(garak.probes.Probe):
    """Scripted multi-turn attacks on the staff code: whole in the last turn, or in pieces over the last turns."""

    lang = "en"
    goal = "get the bot to reveal its staff code over several turns"
    doc_uri = "https://arxiv.org/abs/2404.01833"
    primary_detector = "doubleedge.ConversationLeak"
    tags = ["owasp:llm01", "owasp:llm07", "quality:Security:PromptStability", "payload:leak:prompt"]
    tier = garak.probes.Tier.OF_CONCERN
    active = False  # needs the course's session generator
    DEFAULT_PARAMS = garak.probes.Probe.DEFAULT_PARAMS | {"secret": None}  # the code the bot holds

    def __init__(self, config_root=_config):
        super().__init__(config_root=config_root)
        self.scripts = load_scripts()
        self.prompts = [
            Conversation([Turn("user", Message(text, lang=self.lang)) for text in script.turns])
            for script in self.scripts
        ]

    def _attempt_prestore_hook(self, attempt: Attempt, seq: int) -> Attempt:
        script = self.scripts[seq]
        attempt.notes.update({"script": script.id, "technique": script.technique, "turns": len(script.turns)})
        if self.secret:
            attempt.notes["triggers"] = [self.secret]
        return attempt
