"""The reference model: a deterministic stand-in for a weakly aligned open-weight chat model.

It is not a neural network. It is a small rule engine that reproduces, on purpose and
predictably, failure modes that papers and incidents have documented in real chat
models, so that the course's attacks work on it the way they work on real models and a
scan gives the same numbers on every machine. Each behaviour names its source.

Like a real chat model it knows nothing about the business it serves: everything comes
from the messages (the system prompt, the knowledge-base articles the app puts there,
and the user's message). It reads the *last* user message, except that ``conversation``
lets the earlier turns of a chat wear its refusals down (gradual escalation, a persona set
up turns earlier, many examples of compliance); a chat of one message never reaches it.

One module per family of failure: ``hijacking`` (direct and indirect injection, exfiltration
links), ``leaking`` (prompts, secrets, memorized text), ``jailbreaks`` (role play, tense,
code), ``smuggling`` (encodings), ``unsafe_output`` (SQL, templates, terminal codes, markup),
``hallucination``, ``consumption`` (an agent's work without limits), ``helpful`` (its actual job) and
``conversation`` (multi-turn). ``model.BEHAVIOURS`` orders them.
``finetune`` is a variant with some of that tuning lost, for Lab 08's model-upgrade gate.

Where a real model differs: it is stochastic (an attack works some of the time), it
partly complies, paraphrases what it leaks, and varies between model families and
quantizations. The lessons say so next to each lab.
"""

from doubleedge.models.reference.context import COMPLIANCE_MARK, REFUSAL, SECRET_REFUSAL, SystemPrompt, transform
from doubleedge.models.reference.finetune import FinetunedReferenceModel
from doubleedge.models.reference.jailbreaks import persona_tag
from doubleedge.models.reference.model import BEHAVIOURS, ReferenceModel

__all__ = [
    "BEHAVIOURS",
    "COMPLIANCE_MARK",
    "FinetunedReferenceModel",
    "REFUSAL",
    "SECRET_REFUSAL",
    "ReferenceModel",
    "SystemPrompt",
    "persona_tag",
    "transform",
]
