"""The ``doubleedge`` command: serve the bot, scan it, grade submissions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from doubleedge.defenses import DEFENSES
from doubleedge.labs import LABS, ChatTarget, NoChatTarget, get_lab
from doubleedge.labs.targets import SUPPORT_BOT
from doubleedge.models import model_specs, start_loading
from doubleedge.target import learner_id
from doubleedge.target.server import LOOPBACK

DESCRIPTION = "Double Edge's lab kit: serve the course's chatbots, scan them with garak, check and grade your labs."


def app_targets() -> dict[str, ChatTarget]:
    """The labs whose chat target is not the support bot, by number."""
    return {n: lab.target for n, lab in LABS.items() if isinstance(lab.target, ChatTarget) and lab.target.defenses}


def target_for(lab: str | None, defense: str) -> ChatTarget:
    """The lab's chat target (the support bot for no lab, or for a number that is no lab: the
    caller names that error), refusing a defense that does not fit it (ValueError: the CLI's exit 2)."""
    found = LABS[lab].target if lab in LABS else SUPPORT_BOT
    if isinstance(found, NoChatTarget):
        raise ValueError(found.message)
    allowed = found.defenses or tuple(DEFENSES)
    if defense in allowed:
        return found
    if found.defenses:
        raise ValueError(f"Lab {lab} targets {found.name}: --defense is one of {', '.join(found.defenses)}")
    owner = next(n for n, target in app_targets().items() if defense in target.defenses)
    raise ValueError(f"--defense {defense} hardens {app_targets()[owner].name}: add --lab {owner}")


def cmd_serve(args: argparse.Namespace) -> int:
    if args.host not in (LOOPBACK, "localhost", "::1"):
        print(f"warning: serving on {args.host}, reachable beyond this machine", file=sys.stderr)
    if args.lab is not None:
        get_lab(args.lab)
    target = target_for(args.lab, args.defense)
    start_loading(args.model)
    server = target.serve(target.build(args.model, args.defense, args.learner), args.host, args.port)
    more = target.routes.format(url=server.url)
    if getattr(server, "sessions", None) is not None:
        more += f" (conversations: POST {server.url}/sessions)"
    print(f"{target.speaker} (defense: {args.defense}) answers POST {server.url}/chat{more}  (Ctrl-C to stop)",
          flush=True)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from doubleedge.scan import ScanError, scan_for_lab
    from doubleedge.scan.runner import show_progress

    target = target_for(args.lab, args.defense)
    spec = scan_for_lab(args.lab, model=args.model)
    workdir = Path(args.workdir or f"scans/lab{args.lab}-{args.defense}")
    if not args.json and sys.stderr.isatty():
        show_progress(lambda line: print(line, file=sys.stderr, flush=True))
    try:
        if args.url:
            if target.url_refusal:
                raise ValueError(target.url_refusal)
            report = target.scan_url(args.url, spec, workdir)
        else:
            start_loading(args.model)
            report = target.scan(target.build(args.model, args.defense, args.learner), spec, workdir)
    except ScanError as exc:
        print(f"scan failed: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps(
                {
                    "lab": args.lab,
                    "defense": args.defense,
                    "results": [r.as_dict() for r in report.results],
                    "overall_attack_success_rate": round(report.overall_attack_success_rate, 4),
                },
                indent=1,
            )
        )
    else:
        print(report.table())
        print(f"\nreport: {report.report_path}")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from doubleedge.grading.pipeline import GradingError, Submission, find_submissions, grade, write_csv
    from doubleedge.grading.sandbox import SandboxError, make_sandbox

    lab = get_lab(args.lab)
    if args.notebook:
        submissions = [Submission(args.learner or learner_id(), Path(args.notebook))]
    elif args.submissions:
        submissions = find_submissions(Path(args.submissions), lab)
    else:
        raise SystemExit("give a folder of submissions (one sub-folder per learner) or --notebook FILE")
    # A class is untrusted code: the sandbox is required unless asked otherwise. Your own notebook: if available.
    try:
        box = make_sandbox(args.sandbox or ("auto" if args.notebook else "bwrap"))
    except SandboxError as exc:
        print(f"doubleedge: {exc}", file=sys.stderr)
        return 2
    course_dir = Path(args.course_dir) if args.course_dir else None
    # Your own notebook: the CSV goes next to it, in your workspace (a class's: where you are).
    out = Path(args.out or (Path(args.notebook).parent / "grades.csv" if args.notebook else "grades.csv"))
    if args.notebook:
        print(f"grading {args.notebook} as the grader does (a fresh run, hidden tests, held-out attacks) ...",
              file=sys.stderr, flush=True)  # fmt: skip
    try:
        rows = grade(lab, submissions, course_dir, workers=args.workers, box=box, dask=args.dask)
    except GradingError as exc:
        print(f"doubleedge: {exc}", file=sys.stderr)
        return 2
    write_csv(rows, out)
    points = graded_points(lab) if args.notebook else {}
    for row in rows:
        print(f"{row.learner}: {row.score:g}/{row.max_score:g}" + "".join(f"\n  - {n}" for n in row.notes))
        print(breakdown(row, points), end="")
    print(f"grades written to {out}")
    return 0


def graded_points(lab) -> dict[str, float]:  # grading.labs.Lab
    """Each graded test's points, from the lab's notebook."""
    import nbformat

    cells = nbformat.read(lab.source_notebook, as_version=4).cells
    meta = [c.get("metadata", {}).get("nbgrader", {}) for c in cells]
    return {m["grade_id"]: float(m.get("points") or 0) for m in meta if m.get("grade") and m.get("grade_id")}


# The course site's page with the rubric for written answers and the model answers.
WRITTEN_ANSWERS_PAGE = "learners/written-answers/ on the course site (course/learners/written-answers.md)"


def _person_graded(score: float | None, points: float) -> str:
    return f"{score:g}/{points:g} (graded by a person)" if score is not None else f"?/{points:g} waits for a person"


def breakdown(row, points: dict[str, float]) -> str:  # pipeline.GradeRow
    """A self-grade's parts: points per test and the attack success rates (garak, held-out)."""
    lines = [f"  {t:28} {row.tests.get(t, 0.0):g}/{p:g}" for t, p in points.items() if t in row.tests]
    lines += [f"  {t:28} {_person_graded(row.manual[t], p)}" for t, p in points.items() if t in row.manual]
    if row.manual_pending and points:
        lines.append(f"  Written answers ({row.manual_pending:g} points) are graded by a person. Studying alone? Grade")
        lines.append(f"  yourself with the rubric, then compare with the model answers: {WRITTEN_ANSWERS_PAGE}")
    rates = [(k, v) for k, v in row.metrics.items() if k.endswith("_asr") or k == "attack_success_rate"]
    lines += [f"  {k:28} {v:.1%}" for k, v in rates if isinstance(v, (int, float))]
    return "".join(line + "\n" for line in lines)


def cmd_figures(args: argparse.Namespace) -> int:
    from doubleedge import figures

    out = Path(args.out) if args.out else figures.DEFAULT_OUT
    names = tuple(args.set or figures.SETS)
    if args.model and names != ("fidelity",):
        raise ValueError("--model picks the real model of the fidelity set: use it with --set fidelity alone")
    if args.check:
        problems = figures.drift(out, names=names)
        for problem in problems:
            print(f"drift: {problem}")
        print("figures match the committed ones" if not problems else f"{len(problems)} differences")
        return 1 if problems else 0
    records = figures.write(out, names, args.model)
    if "levels" in records:
        print(figures.levels_table(records["levels"]))
    print(f"written to {out}: {', '.join(figures.record_path(name, out).name for name in records)}")
    return 0


def cmd_answer_keys(args: argparse.Namespace) -> int:
    from doubleedge.answer_keys import write_answer_keys

    pages = write_answer_keys(Path(args.out))
    print(f"{len(pages)} answer keys (solutions and hidden tests) in {Path(args.out).resolve()}: instructors only")
    return 0


def cmd_site_generate(args: argparse.Namespace) -> int:
    from doubleedge.site_content import generate

    out = generate(say=print)
    print(f"site content generated in {out}; build with `mkdocs build --strict` or `zensical build --strict --clean`")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from doubleedge.start import start

    return start(args.site_port, args.lab_port, Path(args.workspace), no_browser=args.no_browser)


def dask_address(text: str) -> str:
    from doubleedge.grading.cluster import check_address

    try:
        return check_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def grading_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=1, help="submissions graded in parallel (default: 1)")
    p.add_argument(
        "--dask",
        type=dask_address,
        metavar="local|ADDRESS",
        help="grade on a Dask cluster: 'local' starts --workers processes on this machine (loopback only); "
        "an address such as tcp://10.0.0.5:8786 uses a running scheduler's workers (--workers is then ignored)",
    )
    p.add_argument(
        "--sandbox",
        choices=["bwrap", "auto", "none"],
        help="bwrap: required (default for a class); auto: if available (default for --notebook); none: no sandbox",
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="doubleedge", description=DESCRIPTION)
    sub = top.add_subparsers(dest="command", required=True)

    def target_options(p: argparse.ArgumentParser) -> None:
        defenses = sorted({*DEFENSES, *(d for target in app_targets().values() for d in target.defenses)})
        p.add_argument("--defense", default="none", choices=defenses, help="hardening to apply (default: none)")
        p.add_argument("--learner", help="learner id (default: $DOUBLEEDGE_LEARNER, the hub user, or 'local')")
        p.add_argument("--model", default="reference", help=f"model backend: {model_specs()} (default: reference)")

    serve = sub.add_parser("serve", help="serve the support bot over HTTP (POST /chat)")
    serve.add_argument("--host", default=LOOPBACK, help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--lab", help="serve this lab's target, e.g. 04 the web chat, 05 the agent, 09 Wren (default: the bot)")
    target_options(serve)
    serve.set_defaults(run=cmd_serve)

    scan = sub.add_parser("scan", help="run a lab's garak scan against the bot")
    scan.add_argument("--lab", required=True)
    target_options(scan)
    scan.add_argument("--url", help="scan a bot already served at this /chat URL instead")
    scan.add_argument("--workdir", help="keep garak's reports here (default: scans/labNN-DEFENSE)")
    scan.add_argument("--json", action="store_true", help="print machine-readable results")
    scan.set_defaults(run=cmd_scan)

    grade = sub.add_parser("grade", help="grade lab submissions into a CSV")
    grade.add_argument("--lab", required=True)
    grade.add_argument("submissions", nargs="?", help="folder with one sub-folder per learner")
    grade.add_argument("--notebook", help="grade this one notebook (self-study)")
    grade.add_argument("--learner", help="learner id for --notebook (default: as for serve)")
    grade.add_argument("--out", help="the CSV (default: next to --notebook, else ./grades.csv)")
    grade.add_argument("--course-dir", help="keep the nbgrader course folder (gradebook, feedback) here")
    grading_options(grade)
    grade.set_defaults(run=cmd_grade)
    figs = sub.add_parser("figures", help="measure the figures shown in the course (course/measured/)")
    figs.add_argument("--out", help="folder for the records, NAME.json (default: the course's)")
    figs.add_argument("--check", action="store_true", help="re-measure and report drift instead of writing")
    from doubleedge.figures import SETS

    figs.add_argument("--set", action="append", choices=SETS, metavar="NAME",
                      help=f"measure only this set (repeatable; default: all of {', '.join(SETS)})")  # fmt: skip
    figs.add_argument("--model", help=f"with --set fidelity: the real model compared with the reference one "
                                      f"({model_specs()}; default: smollm2)")  # fmt: skip
    figs.set_defaults(run=cmd_figures)

    from doubleedge.grading.course import add_course_commands
    from doubleedge.grading.hub import add_hub_command

    add_course_commands(sub, grading_options)
    add_hub_command(sub)

    # A learner's self-check across every lab (src/doubleedge/progress.py).
    from doubleedge.progress import add_progress_command

    add_progress_command(sub)

    from doubleedge.answer_keys import DEFAULT_DIR

    keys = sub.add_parser("answer-keys", help="write the labs' answer keys (instructors only) into a folder")
    keys.add_argument("--out", default=DEFAULT_DIR, help=f"a folder outside the site (default: {DEFAULT_DIR})")
    keys.set_defaults(run=cmd_answer_keys)

    site = sub.add_parser("site", help="the course site's generated content")
    site_sub = site.add_subparsers(dest="site_command", required=True)
    generate = site_sub.add_parser("generate", help="write charts, tables, notebook pages and decks into course/generated/")
    generate.set_defaults(run=cmd_site_generate)

    start = sub.add_parser("start", help="build the site, make lab copies, serve the site and JupyterLab")
    start.add_argument("--site-port", type=int, default=8000)
    start.add_argument("--lab-port", type=int, default=8888)
    start.add_argument("--workspace", default="workspace", help="where your lab copies live")
    start.add_argument("--no-browser", action="store_true")
    start.set_defaults(run=cmd_start)
    for choice in sub._choices_actions:  # each subcommand's --help opens with its one-line summary
        command = sub.choices[choice.dest]
        command.description = command.description or choice.help
    return top


def main(argv: list[str] | None = None) -> int:
    from doubleedge.scan.launch import skip_iri_formats

    skip_iri_formats()  # 1.5 s of grammars at nbformat's first import, for formats nothing here checks
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, PermissionError) as exc:  # PermissionError: e.g. another learner's secrets
        print(f"doubleedge: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
