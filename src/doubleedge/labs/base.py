"""What a lab declares: the interface every lab package fills in (see ``doubleedge.labs``).

A lab package ``doubleedge.labs.labNN_slug`` holds ``LAB = Lab(...)`` in its ``__init__``
and its judge in ``judge.py``. Its notebook (``labs/NN-slug/``), lesson
(``course/NN-slug/index.md``) and held-out sets (``graders/heldout/labNN.jsonl``, and
``labNN.ordinary.jsonl`` for the ordinary requests of the proof) stay
outside the package: nbgrader copies the lab folder to learners, and the held-out set must
stay private.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doubleedge.paths import REPO_ROOT, graders_dir, labs_dir

if TYPE_CHECKING:
    from doubleedge.scan.report import ScanReport
    from doubleedge.scan.specs import ScanSpec

# A lab's measure for the course's figures: its scan and ordinary use, before and after
# its reference solution (see doubleedge.figures, "labs").
Measure = Callable[[], tuple[dict, dict]]
# A lab's layers for the course's figures: each layer of its reference solution on its own,
# measured as the grader measures a hardened bot (see doubleedge.figures, "layers").
Layers = Callable[[], dict]


def serve_chat(app: Any, host: str, port: int) -> Any:
    from doubleedge.target.server import ChatServer

    return ChatServer(app, host, port)


def scan_chat(app: Any, spec: ScanSpec, workdir: Path | None) -> ScanReport:
    from doubleedge.scan import scan_bot

    return scan_bot(app, spec, workdir)


def scan_chat_url(chat_url: str, spec: ScanSpec, workdir: Path) -> ScanReport:
    from doubleedge.scan import scan_url

    return scan_url(chat_url, spec, workdir)


def ordinary_set(heldout_attacks: Path) -> Path:
    """The held-out ordinary requests kept beside a held-out attack set: ``labNN.jsonl`` ->
    ``labNN.ordinary.jsonl`` (the grader copies both into the checker's folder this way)."""
    return heldout_attacks.with_name(f"{heldout_attacks.stem}.ordinary.jsonl")


@dataclass(frozen=True)
class ChatTarget:
    """What ``doubleedge serve`` and ``scan --lab NN`` build for a lab: an app that answers POST /chat."""

    name: str  # in messages: "Lab 04 targets the web chat"
    speaker: str  # who answers, in serve's banner
    build: Callable[[str, str, str | None], Any]  # (model spec, --defense, learner) -> the app
    # The --defense names it takes; None: the support bot's (doubleedge.defenses.DEFENSES).
    defenses: tuple[str, ...] | None = None
    serve: Callable[[Any, str, int], Any] = serve_chat  # (app, host, port) -> a server with .url
    scan: Callable[[Any, ScanSpec, Path | None], ScanReport] = scan_chat
    scan_url: Callable[[str, ScanSpec, Path], ScanReport] = scan_chat_url  # ``scan --url`` (a /chat URL)
    routes: str = ""  # more than /chat, in serve's banner; "{url}" is the server's
    url_refusal: str | None = None  # why ``scan --url`` cannot scan it, if it cannot


@dataclass(frozen=True)
class NoChatTarget:
    """A lab whose target is not a chat: ``serve``/``scan --lab NN`` refuse with this message."""

    message: str


@dataclass(frozen=True, eq=False)
class Lab:
    number: str  # "01"; the held-out set is graders/heldout/labNN.jsonl
    slug: str  # folder, nbgrader assignment, notebook and lesson folder name
    title: str  # the one title: nav, syllabus, figures
    target: ChatTarget | NoChatTarget
    package: str  # the lab package (its judge is ``<package>.judge``)
    checks: str  # the module of checks the notebook's hidden tests import
    solution: str | None = None  # the packaged reference solution, if the package serves one
    # The modules of doubleedge.defenses that the lab's setup or cells use as the lab's material
    # (Lab 10's ladder of targets); the grading runner sees none of the others (authoritative.py).
    runner_defenses: tuple[str, ...] = ()
    # The course helpers the lab's judge applies to a learner function in the grading runner
    # (``j.ns.apply(name, function, ...)``), by name: "module:function", which takes the learner's
    # function and data and builds there the objects that cannot cross the pipe (protocol.py).
    runner_helpers: Mapping[str, str] = field(default_factory=dict)
    defense: str | None = None  # the --defense name of that solution
    scan: ScanSpec | None = None  # the lab's garak scan, if it has one
    benign: str | None = None  # what the lab counts as ordinary use, in the figures
    # Labs whose proof has an ordinary half: the one difference from the unhardened bot's reply
    # that a hardened reply may show and still keep an ordinary request ("none" if no difference).
    # `doubleedge progress` and course/learners/grading.md state it.
    ordinary_allowed: str | None = None
    measure: Measure | None = None
    layers: Layers | None = None
    # Phrases that course/learners/grading.md must state about the lab's thresholds.
    thresholds: Callable[[], list[str]] | None = None
    # Text of the source notebook's cells that no learner copy may hold (beyond nbgrader's markers).
    hidden: tuple[str, ...] = ()
    # Test cells as earlier releases showed them, by grade_id: sha256 digests of the visible text
    # (hidden tests cut, stripped). A learner who fetched an earlier release changed nothing, so
    # the grader does not say they did (nbgrader restores today's cell either way).
    earlier_test_cells: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The hints a learner took, read from their submission's folder (shown in the grade CSV).
    hints: Callable[[Path], list[str]] | None = None
    numbered: bool = True  # False: the nav shows the title alone (the capstone)
    # A lab kept outside the repository: the folder holding its NN-slug/ notebook folder, and
    # the one holding its held-out set (default: the repository's labs/ and graders/heldout/).
    labs_root: Path | None = None
    heldout_root: Path | None = None

    @property
    def label(self) -> str:
        """The lesson's entry in the nav and the syllabus."""
        return f"{self.number} {self.title}" if self.numbered else self.title

    @property
    def judge(self) -> str:
        return f"{self.package}.judge"

    @property
    def source_notebook(self) -> Path:
        return (self.labs_root or labs_dir()) / self.slug / f"{self.slug}.ipynb"

    @property
    def heldout_attacks(self) -> Path:
        return (self.heldout_root or graders_dir() / "heldout") / f"lab{self.number}.jsonl"

    @property
    def heldout_ordinary(self) -> Path:
        """The held-out ordinary requests (labs whose proof has an over-blocking half)."""
        return ordinary_set(self.heldout_attacks)

    @property
    def lesson(self) -> Path:
        return REPO_ROOT / "course" / self.slug / "index.md"

    def __hash__(self) -> int:
        return hash(self.number)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lab) and (self.number, self.slug) == (other.number, other.slug)
