"""The instructor's workflow, one command per step, on nbgrader's own course folder.

    doubleedge course init      [--dir D] [--learners FILE] [--exchange PATH]
    doubleedge course release   LAB       # learner copy (nbgrader generate + release to the exchange)
    doubleedge course collect   LAB [--zip FILE]   # from the exchange, or a zip of files named by learner
    doubleedge course grade     LAB [--workers N] [--dask local|tcp://HOST:PORT]  # sandboxed, parallel, authoritative
    doubleedge course feedback  LAB       # nbgrader feedback, checked and scrubbed, released
    doubleedge course export              # nbgrader's CSV, plus per-lab summaries with a chart
    doubleedge course keys      --learners FILE   # each learner's own key, for servers the hub does not start

There is one gradebook, nbgrader's ``gradebook.db`` in the course folder; every step
wraps nbgrader's own commands (the formgrader sees the same folder). ``D`` defaults
to ``./doubleedge-course``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import os
import re
import shutil
import statistics
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from doubleedge.labs import LABS, Lab, get_lab
from doubleedge.paths import graders_dir

if TYPE_CHECKING:
    from doubleedge.grading import pipeline, sandbox

# The command line imports this module to build its parser: the grading machinery
# (nbformat, nbgrader: about a second) is imported only by the steps that use it.
LEARNER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # the same rule as pipeline.LEARNER_ID

DEFAULT_DIR = "doubleedge-course"
COURSE_ID = "double-edge"
MAX_ZIP_MEMBER = 20 * 2**20
REDACTED = "[removed by the grader]"


class Course:
    """A course folder: nbgrader's layout plus ``grades/`` for our CSVs and summaries."""

    def __init__(self, root: Path | str = DEFAULT_DIR) -> None:
        self.root = Path(root).resolve()

    @property
    def grades(self) -> Path:
        return self.root / "grades"

    @property
    def exchange(self) -> Path:
        settings = self.settings()
        return Path(settings.get("exchange") or self.root / "exchange")

    def settings(self) -> dict:
        path = self.root / "course.json"
        return json.loads(path.read_text("utf-8")) if path.is_file() else {}

    def folder(self, lab: Lab) -> pipeline.CourseFolder:
        from doubleedge.grading import pipeline

        if not (self.root / "nbgrader_config.py").is_file():
            raise SystemExit(f"{self.root} is not a course folder: run `doubleedge course init` first")
        return pipeline.CourseFolder(self.root, lab)

    # init ---------------------------------------------------------------------------

    def init(self, learners: list[str], exchange: Path | None = None) -> None:
        from doubleedge.grading import pipeline, sandbox

        self.root.mkdir(parents=True, exist_ok=True)
        exchange = Path(exchange).resolve() if exchange else self.root / "exchange"
        exchange.mkdir(parents=True, exist_ok=True)
        exchange.chmod(0o777 | 0o1000)  # nbgrader's exchange: every user writes, the sticky bit protects
        (self.root / "course.json").write_text(
            json.dumps({"course_id": COURSE_ID, "exchange": str(exchange), "labs": sorted(LABS)}, indent=1), "utf-8"
        )
        (self.root / "nbgrader_config.py").write_text(config_text(self.root, exchange), "utf-8")
        sandbox.install_kernelspec(self.root / pipeline.GRADING_DIR / "jupyter")
        for lab in LABS.values():
            source = self.root / "source" / lab.slug
            if source.exists():
                shutil.rmtree(source)
            shutil.copytree(lab.source_notebook.parent, source)
        self.grades.mkdir(exist_ok=True)
        for learner in learners:
            check_learner(learner)
            pipeline.CourseFolder(self.root, next(iter(LABS.values()))).nbgrader("db", "student", "add", learner)

    # release ------------------------------------------------------------------------

    def release(self, lab: Lab) -> Path:
        folder = self.folder(lab)
        folder.nbgrader("generate_assignment", lab.slug, "--force")
        folder.nbgrader("release_assignment", lab.slug, "--force")
        release = self.root / "release" / lab.slug
        archive = self.root / "outbox" / f"{lab.slug}.zip"
        archive.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(release.rglob("*")):
                if path.is_file():
                    zf.write(path, f"{lab.slug}/{path.relative_to(release)}")
        return archive

    # collect ------------------------------------------------------------------------

    def collect(self, lab: Lab, archive: Path | None = None) -> list[str]:
        """Submissions into ``submitted/<learner>/<lab>/``; returns the learners collected."""
        folder = self.folder(lab)
        if archive is None:
            folder.nbgrader("collect", lab.slug, "--update")
        else:
            self._collect_zip(lab, Path(archive))
        submitted = self.root / "submitted"
        return sorted(p.parent.name for p in submitted.glob(f"*/{lab.slug}") if p.is_dir())

    def _collect_zip(self, lab: Lab, archive: Path) -> None:
        """Files named by learner: ``alice.ipynb``, ``alice_<anything>.ipynb`` or ``alice/<...>.ipynb``.

        Nothing from the zip is trusted: names are checked, links and huge files
        skipped, and each notebook is written under ``submitted/`` by us.
        """
        with zipfile.ZipFile(archive) as zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                name = info.filename.replace("\\", "/")
                if info.is_dir() or not name.endswith(".ipynb") or "/." in f"/{name}" or "__MACOSX" in name:
                    continue
                if (info.external_attr >> 16) & 0o170000 == 0o120000:  # a symbolic link stored in the zip
                    print(f"skipped {name}: a symbolic link", file=sys.stderr)
                    continue
                learner = learner_from_name(name)
                if not learner:
                    print(f"skipped {name}: no learner id in its name", file=sys.stderr)
                    continue
                if info.file_size > MAX_ZIP_MEMBER:
                    print(f"skipped {name}: larger than {MAX_ZIP_MEMBER // 2**20} MB", file=sys.stderr)
                    continue
                target = self.root / "submitted" / learner / lab.slug
                if target.exists():
                    shutil.rmtree(target)
                target.mkdir(parents=True)
                with zf.open(info) as src:
                    (target / f"{lab.slug}.ipynb").write_bytes(src.read(MAX_ZIP_MEMBER + 1))
                stamp = dt.datetime(*info.date_time).strftime("%Y-%m-%d %H:%M:%S.%f")
                (target / "timestamp.txt").write_text(stamp, "utf-8")

    # grade --------------------------------------------------------------------------

    def grade(self, lab: Lab, workers: int, box: sandbox.Sandbox, dask: str | None = None) -> list[pipeline.GradeRow]:
        from doubleedge.grading import cluster, pipeline, sandbox

        folder = self.folder(lab)
        if not (self.root / "release" / lab.slug).is_dir():
            folder.nbgrader("generate_assignment", lab.slug, "--force")
        if not (folder.jupyter_dir / "kernels" / sandbox.KERNEL_NAME).is_dir():
            sandbox.install_kernelspec(folder.jupyter_dir)
        submitted = self.root / "submitted"
        submissions = [
            pipeline.Submission(d.name, d / lab.slug / f"{lab.slug}.ipynb")
            for d in sorted(submitted.iterdir() if submitted.is_dir() else [])
            if (d / lab.slug).exists() or (d / lab.slug).is_symlink()
        ]
        baseline = pipeline.baseline_report(lab, self.root / pipeline.GRADING_DIR / "baseline")
        if dask:
            rows = cluster.grade(folder, submissions, baseline, dask, workers=workers, box=box)
        else:
            rows = pipeline.grade_prepared(folder, submissions, baseline, workers=workers, box=box)
        self.grades.mkdir(exist_ok=True)
        pipeline.write_csv(rows, self.grades / f"{lab.number}.csv")
        (self.grades / f"{lab.number}.json").write_text(pipeline.result_json(rows), "utf-8")
        return rows

    # feedback -----------------------------------------------------------------------

    def feedback(self, lab: Lab) -> list[Path]:
        """nbgrader's feedback, then every file checked for hidden tests and held-out attacks."""
        folder = self.folder(lab)
        folder.nbgrader("generate_feedback", lab.slug, "--force")
        secrets = hidden_material(folder, lab)
        rows = {r["learner"]: with_person_scores(folder, r) for r in self.rows(lab)}
        written = []
        for page in sorted((self.root / "feedback").glob(f"*/{lab.slug}/*.html")):
            learner = page.parent.parent.name
            text = page.read_text("utf-8")
            cleaned = scrub(text, secrets)
            cleaned = cleaned.replace("</body>", grader_notes(rows.get(learner)) + "</body>", 1)
            page.write_text(cleaned, "utf-8")
            written.append(page)
        leaks = [p for p in written if find_hidden(p.read_text("utf-8"), secrets)]
        if leaks:  # never release a page that still shows hidden material
            raise SystemExit(f"feedback still contains hidden material: {', '.join(map(str, leaks))}")
        if (self.exchange / COURSE_ID).is_dir():
            folder.nbgrader("release_feedback", lab.slug)
        return written

    def rows(self, lab: Lab) -> list[dict]:
        path = self.grades / f"{lab.number}.json"
        return json.loads(path.read_text("utf-8")) if path.is_file() else []

    # export -------------------------------------------------------------------------

    def export(self) -> list[Path]:
        folder = self.folder(next(iter(LABS.values())))
        self.grades.mkdir(exist_ok=True)
        folder.nbgrader("export", "--to", str(self.grades / "grades.csv"))
        written = [self.grades / "grades.csv"]
        for lab in LABS.values():
            rows = self.rows(lab)
            if rows:
                written += summarize(lab, rows, self.grades)
        return written


def config_text(root: Path, exchange: Path) -> str:
    from doubleedge.grading import sandbox

    return (
        (graders_dir() / "nbgrader_config.py").read_text("utf-8")
        + f"\nc.CourseDirectory.root = {str(root)!r}\nc.Exchange.root = {str(exchange)!r}\n"
        + sandbox.nbgrader_config_block()
    )


def check_learner(learner: str) -> str:

    if not LEARNER_ID.fullmatch(learner):
        raise SystemExit(f"learner id {learner!r} is not allowed (letters, digits, _ . - only)")
    return learner


def learner_from_name(name: str) -> str | None:
    """``alice.ipynb``, ``alice_lab01.ipynb``, ``alice-01.ipynb`` or ``alice/anything.ipynb`` -> ``alice``."""

    parts = [p for p in name.split("/") if p]
    if len(parts) >= 2:
        candidate = parts[-2]
    else:
        candidate = re.split(r"[_ ]", Path(parts[-1]).stem, maxsplit=1)[0]
    return candidate if LEARNER_ID.fullmatch(candidate) else None


def hidden_material(folder: pipeline.CourseFolder, lab: Lab) -> list[str]:
    """Lines of the hidden tests, the held-out prompts and ordinary requests: none may reach a learner."""
    material = []
    for cell in folder.source_cells().values():
        for block in re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", cell.source, flags=re.S):
            material += [line.strip() for line in block.splitlines() if len(line.strip()) >= 12]
    for held in (lab.heldout_attacks, lab.heldout_ordinary):
        lines = held.read_text("utf-8").splitlines() if held.is_file() else []
        material += [s for line in lines if line.strip() for s in heldout_strings(json.loads(line))]
    return sorted(set(material), key=len, reverse=True)


# Held-out fields that feedback may show: reasons name the kind of case, never its content.
# ("tool" and "args": an ordinary task's call, which names public records, not a payload;
# "base_licence": Lab 08's release plans name a public licence, which the notebook names too.)
SHOWN_FIELDS = frozenset({"id", "kind", "label", "note", "goal", "expect", "category", "format", "alphabet", "tool", "args",
                          "base_licence"})


def heldout_strings(record: object, key: str = "") -> list[str]:
    """Every held-out payload in one record (each lab has its own format): long strings, and secrets."""
    if isinstance(record, dict):
        return [s for k, v in record.items() if k not in SHOWN_FIELDS for s in heldout_strings(v, k)]
    if isinstance(record, list):
        return [s for item in record for s in heldout_strings(item, key)]
    if isinstance(record, str) and (len(record.strip()) >= 12 or (key == "secret" and len(record) >= 4)):
        return [record.strip()]
    return []


def _forms(item: str) -> set[str]:
    return {item, html.escape(item), html.escape(item, quote=False), json.dumps(item)[1:-1]}


def find_hidden(text: str, material: list[str]) -> list[str]:
    return [m for m in material if any(f in text for f in _forms(m))]


def scrub(text: str, material: list[str]) -> str:
    for item in material:
        for form in sorted(_forms(item), key=len, reverse=True):
            text = text.replace(form, REDACTED)
    return text


def with_person_scores(folder: pipeline.CourseFolder, row: dict) -> dict:
    """The row with the written answers' scores and the total as the gradebook holds them now: a person
    may have graded in formgrader since the class was graded."""
    from nbgrader.api import Gradebook, MissingEntry

    if not row.get("manual"):
        return row
    with Gradebook(folder.gradebook_url) as gradebook:
        try:
            submission = gradebook.find_submission(folder.lab.slug, row["learner"])
        except MissingEntry:
            return row
        manual = {g.name: g.manual_score for nb in submission.notebooks for g in nb.grades if g.name in row["manual"]}
        return {**row, "score": submission.score, "manual": manual}


def grader_notes(row: dict | None) -> str:
    """The authoritative results for the feedback page (reasons are the checker's own words)."""
    if not row:
        return ""
    items = "".join(
        f"<li><code>{html.escape(test)}</code>: {'passed' if score else 'not passed'}</li>"
        for test, score in sorted(row["tests"].items())
    ) + "".join(
        f"<li><code>{html.escape(answer)}</code>: "
        f"{'waits for a person' if score is None else f'{score:g} points from a person'}</li>"
        for answer, score in sorted(row.get("manual", {}).items())
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in row["notes"])
    return (
        '<section id="doubleedge-grader-notes" style="margin:2em;padding:1em;border:1px solid #888">'
        f"<h2>Grader notes</h2><p>Score: {row['score']:g} / {row['max_score']:g}. Scores come from a "
        "separate run of your code (with a held-out attack set), not from the outputs above.</p>"
        f"<ul>{items}</ul>{f'<h3>Why</h3><ul>{notes}</ul>' if notes else ''}</section>"
    )


def summarize(lab: Lab, rows: list[dict], out: Path) -> list[Path]:
    """A Markdown summary and a PNG chart: score distribution and the attacks that beat most bots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = [r["score"] for r in rows]
    max_score = max((r["max_score"] for r in rows), default=0)
    attacks: Counter[str] = Counter()
    for r in rows:
        attacks.update(r.get("attacks", {}).get("heldout", []))
        attacks.update(p for p, rate in r.get("attacks", {}).get("garak", {}).items() if rate > 0)
    top = attacks.most_common(10)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.hist(scores, bins=range(int(max_score) + 2), align="left", color="#3a6ea5", edgecolor="white")
    left.set(title=f"Lab {lab.number}: scores ({len(rows)} learners)", xlabel="score", ylabel="learners")
    if top:
        right.barh([name for name, _ in reversed(top)], [n for _, n in reversed(top)], color="#c0504d")
    right.set(title="Attacks that beat the most hardened bots", xlabel="learners' bots beaten")
    figure.tight_layout()
    chart = out / f"{lab.number}-summary.png"
    figure.savefig(chart, dpi=100)
    plt.close(figure)
    problems = Counter(n.split(":")[0] for r in rows for n in r["notes"])
    lines = [
        f"# Lab {lab.number} ({lab.slug}): summary",
        "",
        f"Learners: {len(rows)}. Mean score {statistics.mean(scores) if scores else 0:.1f} / {max_score:g}, "
        f"median {statistics.median(scores) if scores else 0:g}. Full marks: {sum(s == max_score for s in scores)}.",
        "",
        f"![score distribution and most successful attacks]({chart.name})",
        "",
        "| attack (held-out id or garak probe) | hardened bots it beat |",
        "| --- | --- |",
        *[f"| {name} | {count} |" for name, count in top],
        "",
        "| most common notes | learners |",
        "| --- | --- |",
        *[f"| {html.escape(k)} | {v} |" for k, v in problems.most_common(10)],
        "",
    ]
    summary = out / f"{lab.number}-summary.md"
    summary.write_text("\n".join(lines), "utf-8")
    return [summary, chart]


# The command line ----------------------------------------------------------------------


def add_course_commands(sub, grading_options) -> None:
    course = sub.add_parser("course", help="the instructor's workflow: init, release, collect, grade, feedback, export")
    steps = course.add_subparsers(dest="step", required=True)

    def step(name: str, help: str, lab: bool = True) -> argparse.ArgumentParser:
        p = steps.add_parser(name, help=help)
        p.add_argument("--dir", default=DEFAULT_DIR, help=f"the course folder (default: {DEFAULT_DIR})")
        if lab:
            p.add_argument("lab", help="lab number, e.g. 01")
        p.set_defaults(run=run_step)
        return p

    init = step("init", "create the course folder from the repository's labs", lab=False)
    init.add_argument("--learners", help="a file with one learner id per line")
    init.add_argument("--exchange", help="nbgrader exchange folder (default: <dir>/exchange)")
    step("release", "generate the learner copy and release it to the exchange (and a zip)")
    collect = step("collect", "collect submissions from the exchange, or from a zip of files named by learner")
    collect.add_argument("--zip", help="a zip of alice.ipynb, bob_lab01.ipynb or carol/... files")
    grade = step("grade", "grade the collected submissions (sandboxed, parallel)")
    grading_options(grade)
    step("feedback", "generate, scrub and release feedback")
    step("export", "nbgrader's grades.csv, plus a summary and chart per lab", lab=False)
    keys = step("keys", "print each learner's key (DOUBLEEDGE_LEARNER_KEY) for their own environment", lab=False)
    keys.add_argument("--learners", required=True, help="a file with one learner id per line, or a,b,c")


def run_step(args: argparse.Namespace) -> int:
    from doubleedge.grading import pipeline, sandbox

    course = Course(args.dir)
    if args.step == "init":
        learners = []
        if args.learners:
            learners = [line.strip() for line in Path(args.learners).read_text("utf-8").splitlines() if line.strip()]
        course.init(learners, Path(args.exchange) if args.exchange else None)
        print(f"course folder ready: {course.root} (exchange: {course.exchange})")
        return 0
    if args.step == "keys":
        return print_learner_keys(args.learners)
    if args.step == "export":
        for path in course.export():
            print(f"wrote {path}")
        return 0
    lab = get_lab(args.lab)
    if args.step == "release":
        archive = course.release(lab)
        print(f"released {lab.slug} to the exchange; learner copy for other channels: {archive}")
    elif args.step == "collect":
        learners = course.collect(lab, Path(args.zip) if args.zip else None)
        print(f"{len(learners)} submissions in {course.root / 'submitted'}: {', '.join(learners)}")
    elif args.step == "grade":
        box = sandbox.make_sandbox(args.sandbox or "bwrap")
        try:
            rows = course.grade(lab, args.workers, box, args.dask)
        except pipeline.GradingError as exc:
            print(f"doubleedge: {exc}", file=sys.stderr)
            return 2
        for row in rows:
            print(f"{row.learner}: {row.score:g}/{row.max_score:g}" + "".join(f"\n  - {n}" for n in row.notes))
        print(f"grades written to {course.grades / f'{lab.number}.csv'}")
    elif args.step == "feedback":
        pages = course.feedback(lab)
        print(f"{len(pages)} feedback pages checked and released (feedback/)")
    return 0


def print_learner_keys(learners: str) -> int:
    """One line per learner: the variables to set in that learner's environment (a laptop, a
    server the hub does not start). Each learner gets their own line, never the course key."""
    from doubleedge.target.secrets import COURSE_KEY_ENV, learner_environment

    path = Path(learners)
    names = path.read_text("utf-8").split() if path.is_file() else [x for x in learners.split(",") if x]
    if not os.environ.get(COURSE_KEY_ENV):
        print(f"warning: {COURSE_KEY_ENV} is not set: these keys come from the public key", file=sys.stderr)
    for name in names:
        print(" ".join(f"{k}={v}" for k, v in learner_environment(check_learner(name)).items()))
    return 0
