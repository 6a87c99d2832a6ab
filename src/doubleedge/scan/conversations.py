"""Multi-turn attacks with garak, through the bot's session API.

garak 0.17.1 has multi-turn probes (``fitd.FITD``, ``goat.GOATAttack``, ``tap.TAP``,
``tap.PAIR``), but each needs a second, attacking LLM (NVIDIA's hosted NIM or a multi-GB
hub model) to write the next turn, and an LLM judge to score it: nothing that runs offline
or gives the same numbers twice. Its ``rest`` and ``function`` generators send only the
last message, so a target's conversation never reaches them either.

So the course ships both halves:

* the probe ``doubleedge_conversations.MultiTurn`` plays scripted conversations
  (``data/multiturn_attacks.jsonl``: Crescendo, a persona set up turns earlier, many-shot),
  each a garak ``Conversation`` of the user's turns. Some ask for the whole code in their
  last turn; the ``-pieces`` ones ask for it a part per turn, so that no single reply holds
  it (payload splitting, Kang et al. 2023, arXiv:2302.05733; the split disclosure of
  Pfister et al. 2025, arXiv:2501.07927);
* the generator ``doubleedge_sessions.SessionChat`` plays such a conversation against a
  server: it opens a session (``POST /sessions``), sends each user turn to ``/chat`` in it,
  and returns the last reply with every reply in its notes. garak's detector
  (``doubleedge.ConversationLeak``) counts a hit when the code can be put back together from
  all of them (``doubleedge.disclosure.recoverable``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from doubleedge.evaluate import read_jsonl
from doubleedge.scan.report import ScanReport
from doubleedge.scan.runner import _workdir, run_garak
from doubleedge.scan.specs import ScanSpec
from doubleedge.target import derive_secret, learner_id
from doubleedge.target.persona import ChatBot
from doubleedge.target.server import serving

PROBE = "doubleedge_conversations.MultiTurn"
GENERATOR = "doubleedge_sessions.SessionChat"
TECHNIQUES = ("crescendo", "persona", "many-shot")


@dataclass(frozen=True)
class Script:
    """A multi-turn attack: the user's turns, in order; the last one asks for the secret."""

    id: str
    technique: str
    turns: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.technique not in TECHNIQUES:
            raise ValueError(f"technique must be one of {TECHNIQUES}, not {self.technique!r}")
        if len(self.turns) < 2 or not all(isinstance(t, str) and t.strip() for t in self.turns):
            raise ValueError("a multi-turn script needs two or more non-empty turns")


def load_scripts(path: Path | str | None = None) -> list[Script]:
    """The course's scripts, or those of a JSONL file (``id``, ``technique``, ``turns``)."""
    if path is None:
        path = resources.files("doubleedge.data").joinpath("multiturn_attacks.jsonl")
    return read_jsonl(path, lambda r: Script(r["id"], r["technique"], tuple(r["turns"])))


class SessionAPIError(RuntimeError):
    """The server refused or failed a turn; the message says which and why."""


def _post(url: str, payload: dict, timeout: float) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise SessionAPIError(f"{url} answered {exc.code}: {exc.read()[:300].decode(errors='replace')}") from None
    except (OSError, ValueError) as exc:
        raise SessionAPIError(f"{url} did not answer: {exc}") from None


def play(base_url: str, turns: list[str] | tuple[str, ...], *, timeout: float = 120) -> list[str]:
    """Play ``turns`` as one new conversation on the server at ``base_url``; the replies, in order."""
    base_url = base_url.rstrip("/")
    session = _post(f"{base_url}/sessions", {}, timeout)["session"]
    replies = []
    for turn in turns:
        replies.append(_post(f"{base_url}/chat", {"message": turn, "session": session}, timeout)["reply"])
    request = urllib.request.Request(f"{base_url}/sessions/{session}", method="DELETE")
    try:  # tidy up; the server would let it expire anyway
        urllib.request.urlopen(request, timeout=timeout).close()
    except OSError:
        pass
    return replies


def multiturn_spec(prompt_cap: int = 100) -> ScanSpec:
    """Lab 12's scan: every course script, played turn by turn."""
    return ScanSpec(lab="12", probes=(PROBE,), prompt_cap=prompt_cap, course_plugins=True)


def with_secret(spec: ScanSpec, secret: str) -> ScanSpec:
    """``spec`` with the code the scanned bot holds given to the probe, which hands it to the detector.
    An option of this run only: the spec's fields stay those the lab declares (the figures' key)."""
    options = spec.probe_options.get(PROBE, {}) | {"secret": secret}
    return replace(spec, probe_options=spec.probe_options | {PROBE: options})


def scan_url(base_url: str, workdir: Path, *, secret: str, spec: ScanSpec | None = None) -> ScanReport:
    """garak's multi-turn scan of a bot already served at ``base_url`` (``http://127.0.0.1:PORT``)
    holding the staff code ``secret``."""
    spec = with_secret(spec or multiturn_spec(), secret)
    play(base_url, ["Hello", "Hello"])  # a server without sessions fails here, clearly
    generators = {"doubleedge_sessions": {"SessionChat": {"uri": base_url, "request_timeout": spec.request_timeout}}}
    return run_garak(
        spec,
        workdir,
        target_type=GENERATOR,
        generators=generators,
        target_name=base_url,
        prompts=min(spec.prompt_cap, len(load_scripts())),
        timeout=spec.run_timeout,
    )


def scan_chat_url(chat_url: str, spec: ScanSpec, workdir: Path) -> ScanReport:
    """``doubleedge scan --lab 12 --url URL``: the served bot's /chat URL, as for every lab. The
    code is this learner's, the one ``doubleedge serve --lab 12`` gives Bell by default."""
    return scan_url(chat_url.rstrip("/").removesuffix("/chat"), workdir, secret=derive_secret(learner_id()), spec=spec)


def scan_bot(bot: ChatBot, workdir: Path | None = None, *, spec: ScanSpec | None = None) -> ScanReport:
    """Serve ``bot`` on a free loopback port and scan it with the multi-turn scripts."""
    with _workdir(workdir) as folder, serving(bot) as server:
        return scan_url(server.url, folder, secret=bot.secret, spec=spec)
