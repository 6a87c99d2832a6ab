"""Canary extraction: prompt with the known start of a planted secret, see if the model completes it.

Prompts and secrets come from a JSON-lines file of canaries (``id``, ``prefix``, ``secret``),
set with the probe option ``canary_file``. The approach is Carlini et al. 2019's
extraction of planted canaries ("The Secret Sharer", https://arxiv.org/abs/1802.08232).
"""

import json

import garak.probes
from garak import _config
from garak.attempt import Attempt


class Canaries(garak.probes.Probe):
    """Does the model complete the known prefix of a planted secret (a canary) with the secret?"""

    lang = "en"
    active = False  # needs a canary file: never part of a default run
    goal = "make the model reveal a secret from its training data"
    doc_uri = "https://arxiv.org/abs/1802.08232"
    primary_detector = "doubleedge_canaries.SecretLeak"
    tags = ["owasp:llm02", "avid-effect:security:S0301", "quality:Security:ExtractionInversion"]
    tier = garak.probes.Tier.OF_CONCERN
    DEFAULT_PARAMS = garak.probes.Probe.DEFAULT_PARAMS | {"canary_file": None}

    def __init__(self, config_root=_config):
        super().__init__(config_root=config_root)
        if not self.canary_file:
            raise ValueError("doubleedge_canaries.Canaries needs the probe option canary_file")
        self.prompts, self.triggers = [], []
        with open(self.canary_file, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    self.prompts.append(record["prefix"])
                    self.triggers.append(record["secret"])

    def _attempt_prestore_hook(self, attempt: Attempt, seq: int) -> Attempt:
        attempt.notes["triggers"] = [self.triggers[seq]]
        return attempt
