"""The ``doubleedge`` command: serve the bot, scan it, grade submissions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from doubleedge.defenses import DEFENSES, get_defense
from doubleedge.models import load_model, model_specs
from doubleedge.target import SupportBot, derive_secret, learner_id
from doubleedge.target.server import LOOPBACK, ChatServer

if TYPE_CHECKING:
    from doubleedge.scan import ScanReport, ScanSpec
    from doubleedge.target.agent import AgentBot
    from doubleedge.target.webchat import WebChat, WebChatServer


def build_bot(model: str, defense: str, learner: str | None) -> SupportBot:
    secret = derive_secret(learner or learner_id())
    return SupportBot(load_model(model), secret=secret, defense=get_defense(defense, secret))


# Labs whose target is not the support bot, with the defenses that harden it: Lab 04's web
# chat (its page and order desk do the damage, see scan/webchat.py), Lab 05's agent and the
# capstone's chat desk (Wren, target/capstone.py).
APP_DEFENSES = {"04": ("none", "lab04"), "05": ("none", "lab05"), "09": ("none", "lab09")}
APP_NAMES = {"04": "the web chat", "05": "the agent", "09": "Wren's desk (the capstone)"}
# Labs with no chat target: what their notebook scans instead.
NO_CHAT_TARGET = {
    "06": "Lab 06's target is model files, not a chat: the notebook scans them with picklescan "
    "(doubleedge.supplychain.scan_path)",
    "07": "Lab 07's target is the model you train in the notebook, not a chat: the notebook scans it with garak "
    "(doubleedge.memorization.garak_scan.scan_model)",
}


def check_target(lab: str | None, defense: str) -> None:
    """Refuse a defense that does not fit the lab's target (ValueError: the CLI's exit 2)."""
    if lab in NO_CHAT_TARGET:
        raise ValueError(NO_CHAT_TARGET[lab])
    if lab in APP_DEFENSES and defense not in APP_DEFENSES[lab]:
        raise ValueError(f"Lab {lab} targets {APP_NAMES[lab]}: --defense is one of {', '.join(APP_DEFENSES[lab])}")
    if lab not in APP_DEFENSES and defense not in DEFENSES:
        owner = next(n for n, names in APP_DEFENSES.items() if defense in names)
        raise ValueError(f"--defense {defense} hardens {APP_NAMES[owner]}: add --lab {owner}")


def build_agent(model: str, defense: str) -> AgentBot:
    from doubleedge.defenses import lab05
    from doubleedge.target.agent import AgentBot, AgentDefense

    return AgentBot(load_model(model), defense=lab05.build_agent_defense() if defense == "lab05" else AgentDefense())


def build_webchat(model: str, defense: str, learner: str | None) -> WebChat:
    from doubleedge.defenses import lab04
    from doubleedge.target.webchat import Policy, WebChat

    hardened = Policy("lab04", lab04.render, lab04.order_query, lab04.CONTENT_SECURITY_POLICY)
    return WebChat(build_bot(model, "none", learner), hardened if defense == "lab04" else Policy())


def build_capstone_desk(model: str, defense: str, learner: str | None) -> SupportBot:
    from doubleedge.defenses import lab09
    from doubleedge.target.capstone import WrenDesk, capstone_secret

    secret = capstone_secret(learner or learner_id())
    return WrenDesk(
        load_model(model), secret=secret, defense=lab09.build_defense(secret) if defense == "lab09" else None
    )


def chat_server(args: argparse.Namespace) -> ChatServer | WebChatServer:
    """The lab's target over HTTP: the web chat (04), the agent (05) or the support bot."""
    if args.lab is not None:
        from doubleedge.grading.labs import get_lab

        get_lab(args.lab)
    check_target(args.lab, args.defense)
    if args.lab == "04":
        from doubleedge.target.webchat import WebChatServer

        return WebChatServer(build_webchat(args.model, args.defense, args.learner), args.host, args.port)
    if args.lab == "05":
        return ChatServer(build_agent(args.model, args.defense), args.host, args.port)
    if args.lab == "09":
        return ChatServer(build_capstone_desk(args.model, args.defense, args.learner), args.host, args.port)
    return ChatServer(build_bot(args.model, args.defense, args.learner), args.host, args.port)


def cmd_serve(args: argparse.Namespace) -> int:
    if args.host not in (LOOPBACK, "localhost", "::1"):
        print(f"warning: serving on {args.host}, reachable beyond this machine", file=sys.stderr)
    server = chat_server(args)
    more = f" and /order, its page at {server.url}/" if args.lab == "04" else ""
    name = "Wren" if args.lab == "09" else "Bell"
    print(f"{name} (defense: {args.defense}) answers POST {server.url}/chat{more}  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def scan_target(args: argparse.Namespace, spec: ScanSpec, workdir: Path | None) -> ScanReport:
    """Serve the lab's target for one scan: the web chat (04), the agent (05) or the support bot."""
    from doubleedge.scan import scan_bot

    if args.lab == "04":
        from doubleedge.scan.webchat import scan_webchat

        return scan_webchat(build_webchat(args.model, args.defense, args.learner), spec, workdir)
    if args.lab == "05":
        return scan_bot(build_agent(args.model, args.defense), spec, workdir)
    if args.lab == "09":
        return scan_bot(build_capstone_desk(args.model, args.defense, args.learner), spec, workdir)
    return scan_bot(build_bot(args.model, args.defense, args.learner), spec, workdir)


def cmd_scan(args: argparse.Namespace) -> int:
    from doubleedge.scan import ScanError, scan_for_lab, scan_url

    check_target(args.lab, args.defense)
    spec = scan_for_lab(args.lab)
    workdir = Path(args.workdir) if args.workdir else None
    try:
        if args.url:
            if workdir is None:
                raise SystemExit("--url needs --workdir (where garak writes its reports)")
            if args.lab == "04":
                raise ValueError("Lab 04 scans what the web chat's page and order desk make of replies: drop --url")
            report = scan_url(args.url, spec, workdir)
        else:
            report = scan_target(args, spec, workdir)
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
        if workdir:
            print(f"\nreport: {report.report_path}")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from doubleedge.grading.labs import get_lab
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
    try:
        rows = grade(lab, submissions, course_dir, workers=args.workers, box=box, dask=args.dask)
    except GradingError as exc:
        print(f"doubleedge: {exc}", file=sys.stderr)
        return 2
    write_csv(rows, Path(args.out))
    for row in rows:
        print(f"{row.learner}: {row.score:g}/{row.max_score:g}" + "".join(f"\n  - {n}" for n in row.notes))
    print(f"grades written to {args.out}")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from doubleedge import figures

    out = Path(args.out) if args.out else figures.DEFAULT_OUT
    if args.check:
        problems = figures.drift(out)
        for problem in problems:
            print(f"drift: {problem}")
        print("figures match the committed ones" if not problems else f"{len(problems)} differences")
        return 1 if problems else 0
    data = figures.write(out)
    print(figures.levels_table(data))
    print(f"written to {out}")
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
    top = argparse.ArgumentParser(prog="doubleedge", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    def target_options(p: argparse.ArgumentParser) -> None:
        defenses = sorted({*DEFENSES, *(d for names in APP_DEFENSES.values() for d in names)})
        p.add_argument("--defense", default="none", choices=defenses, help="hardening to apply (default: none)")
        p.add_argument("--learner", help="learner id (default: $DOUBLEEDGE_LEARNER, the hub user, or 'local')")
        p.add_argument("--model", default="reference", help=f"model backend: {model_specs()} (default: reference)")

    serve = sub.add_parser("serve", help="serve the support bot over HTTP (POST /chat)")
    serve.add_argument("--host", default=LOOPBACK, help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--lab", help="serve this lab's target: 04 the web chat, 05 the agent (default: the bot)")
    target_options(serve)
    serve.set_defaults(run=cmd_serve)

    scan = sub.add_parser("scan", help="run a lab's garak scan against the bot")
    scan.add_argument("--lab", required=True)
    target_options(scan)
    scan.add_argument("--url", help="scan a bot already served at this /chat URL instead")
    scan.add_argument("--workdir", help="keep garak's reports here (default: a temporary folder)")
    scan.add_argument("--json", action="store_true", help="print machine-readable results")
    scan.set_defaults(run=cmd_scan)

    grade = sub.add_parser("grade", help="grade lab submissions into a CSV")
    grade.add_argument("--lab", required=True)
    grade.add_argument("submissions", nargs="?", help="folder with one sub-folder per learner")
    grade.add_argument("--notebook", help="grade this one notebook (self-study)")
    grade.add_argument("--learner", help="learner id for --notebook (default: as for serve)")
    grade.add_argument("--out", default="grades.csv")
    grade.add_argument("--course-dir", help="keep the nbgrader course folder (gradebook, feedback) here")
    grading_options(grade)
    grade.set_defaults(run=cmd_grade)
    figs = sub.add_parser("figures", help="measure the baseline and defense-level figures shown in the course")
    figs.add_argument("--out", help="folder for figures.json, tables and charts (default: the course's)")
    figs.add_argument("--check", action="store_true", help="re-measure and report drift instead of writing")
    figs.set_defaults(run=cmd_figures)

    from doubleedge.grading.course import add_course_commands
    from doubleedge.grading.hub import add_hub_command

    add_course_commands(sub, grading_options)
    add_hub_command(sub)

    # A learner's self-check across every lab (src/doubleedge/progress.py).
    from doubleedge.progress import add_progress_command

    add_progress_command(sub)

    start = sub.add_parser("start", help="build the site, make lab copies, serve the site and JupyterLab")
    start.add_argument("--site-port", type=int, default=8000)
    start.add_argument("--lab-port", type=int, default=8888)
    start.add_argument("--workspace", default="workspace", help="where your lab copies live")
    start.add_argument("--no-browser", action="store_true")
    start.set_defaults(run=cmd_start)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as exc:
        print(f"doubleedge: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
