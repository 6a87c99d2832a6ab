"""Running garak as a subprocess against the bot over HTTP (garak's ``rest`` generator).

garak keeps global state and some errors call ``exit()``, so a process of its own is the
reliable way to run it more than once: forked from this process's launcher, which has garak's
libraries loaded (forkserver.py), or a new Python where there is no launcher. Each run gets its
own folder: its XDG directories (garak's data, cache and config), its config file, its reports
and, when forked, its output (``garak.out``).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from doubleedge.progressbar import notebook_bar
from doubleedge.scan import forkserver
from doubleedge.scan.launch import NO_COURSE_PLUGINS
from doubleedge.scan.report import ScanError, ScanReport, read_report
from doubleedge.scan.specs import ScanSpec
from doubleedge.target.persona import ChatBot
from doubleedge.target.server import serving

REPORT_PREFIX = "scan"
# Where scans report each probe as garak finishes it: set by the command line on a
# terminal (show_progress). Without it, a scan in a notebook shows a progress bar and
# anything else (tests, the grader, --json) stays quiet.
_progress: Callable[[str], None] | None = None
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def rest_generator(chat_url: str, *, timeout: int = 120, request: dict | None = None, name: str | None = None) -> dict:
    """garak's RestGenerator settings for ``POST /chat {"message"} -> {"reply"}``.

    ``request`` replaces the body template; garak puts its prompt where ``"$INPUT"`` is.
    ``name`` is what garak calls the target in its prompts (default: the URL).
    """
    named = {} if name is None else {"name": name}
    return named | {
        "uri": chat_url,
        "method": "post",
        "headers": {"Content-Type": "application/json"},  # garak sends none by default
        "req_template_json_object": request or {"message": "$INPUT"},
        "response_json": True,
        "response_json_field": "reply",
        "request_timeout": timeout,  # a read timeout kills garak's run: be generous
        # garak retries any other 5xx for ever (0.17 ignores its retry_5xx option), so one
        # prompt that breaks the target would hang the scan. 502 is our server's "the model
        # backend failed on this prompt", 500 "the app's code failed": garak records no
        # output for the prompt and goes on. Graders never rely on this: a bot built on a
        # learner's code answers every prompt (grading/remote.py keep_answering).
        "skip_codes": [500, 502],
    }


def garak_config(spec: ScanSpec, workdir: Path, *, target_type: str, generators: dict | None = None) -> dict:
    system = {"lite": True, "narrow_output": True, "show_z": False}
    if spec.parallel_attempts > 1:
        system["parallel_attempts"] = spec.parallel_attempts
    return {
        "system": system,
        "run": {
            "seed": spec.seed,
            "generations": spec.generations,
            "soft_probe_prompt_cap": spec.prompt_cap,
        },
        "plugins": {
            "target_type": target_type,
            "extended_detectors": False,
            "generators": generators or {},
            "probes": spec.probes_config(),
        },
        "reporting": {
            "report_dir": str(workdir / "reports"),
            "report_prefix": REPORT_PREFIX,
            "confidence_interval_method": "none",
        },
    }


def garak_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OFFLINE)
    # Some probes build prompt sets from Python sets: fix string hashing so the
    # prompt cap keeps the same prompts on every run and machine.
    env["PYTHONHASHSEED"] = "0"
    # A process that imported garak itself has set GARAK_LOG_FILE to its own log: each scan logs in
    # its folder, where a failed scan's message is read from (_log_tail).
    env.pop("GARAK_LOG_FILE", None)
    # garak runs in ``workdir``: a relative PYTHONPATH entry (``PYTHONPATH=src``) would name nothing
    # there, and garak's launcher would come from another installed copy of the kit.
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    for name in ("DATA", "CACHE", "CONFIG"):
        env[f"XDG_{name}_HOME"] = str(workdir / name.lower())
    return env


def run_garak(
    spec: ScanSpec,
    workdir: Path,
    *,
    target_type: str = "rest",
    generators: dict | None = None,
    target_name: str | None = None,
    prompts: int | None = None,
    timeout: float = 900,
) -> ScanReport:
    """Run one garak scan and read its report. Raises ScanError if it did not finish.

    ``target_name`` is garak's ``-n`` (a model folder for the huggingface generator);
    ``prompts``, when known, is how many prompts the scan sends (the length of the bar).
    A spec with ``garak_processes`` > 1 runs its probes in that many garak processes at once
    (see ``probe_groups``), each in its own sub-folder; their reports are joined into one.
    """
    workdir = Path(workdir).resolve()  # garak runs in it: relative paths would point elsewhere
    workdir.mkdir(parents=True, exist_ok=True)
    report = workdir / "reports" / f"{REPORT_PREFIX}.report.jsonl"
    report.unlink(missing_ok=True)  # an earlier run's report must never pass for this one's
    groups = probe_groups(spec)
    folders = [workdir] if len(groups) == 1 else [workdir / f"part{i + 1}" for i in range(len(groups))]
    on_record, close = _reporter(spec, prompts, report)
    if on_record is not None and len(groups) > 1:  # each group's follower thread reports through it
        on_record = _one_at_a_time(on_record)

    started: list[subprocess.Popen] = []

    def run(group: tuple[str, ...], folder: Path) -> tuple[Path, str]:
        return _garak_process(spec, group, folder, target_type, generators, target_name, timeout, on_record, started)

    pool = concurrent.futures.ThreadPoolExecutor(len(groups))
    try:
        runs = list(pool.map(run, groups, folders))
    except BaseException:  # an interrupt (a notebook's stop button, Ctrl-C) or a failed part
        for process in started:  # stops every garak process now, not after its last probe
            process.kill()
        raise
    finally:
        pool.shutdown(wait=True)
        close()
    if len(groups) > 1:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text("".join(_finished_report(part, output) for part, output in runs), "utf-8")
    try:
        return read_report(report)
    except ScanError as exc:
        raise ScanError(f"{exc}\n--- garak output {runs[0][1]}{_log_tail(workdir)}") from None


def probe_groups(spec: ScanSpec) -> list[tuple[str, ...]]:
    """The spec's probes dealt round-robin into at most ``spec.garak_processes`` groups.

    garak seeds its random generator once per run and each probe's prompt cap draws from it in
    turn, so which prompts a probe keeps depends on the probes run before it in the same process:
    the groups are a fixed function of the spec, never of timing, and the prompts stay the same
    from run to run."""
    count = max(1, min(spec.garak_processes, len(spec.probes)))
    return [spec.probes[i::count] for i in range(count)]


def _garak_process(
    spec: ScanSpec,
    probes: tuple[str, ...],
    workdir: Path,
    target_type: str,
    generators: dict | None,
    target_name: str | None,
    timeout: float,
    on_record: Callable[[dict], None] | None,
    started: list,
) -> tuple[Path, str]:
    """One garak process scanning ``probes`` in ``workdir``: its report's path and its output."""
    workdir.mkdir(parents=True, exist_ok=True)
    settings = garak_config(spec, workdir, target_type=target_type, generators=generators)
    if target_name is not None:
        settings["plugins"]["target_name"] = target_name
    config = workdir / "garak.yaml"  # JSON is valid YAML
    config.write_text(json.dumps(settings, indent=1))
    plugins = [] if spec.course_plugins else [NO_COURSE_PLUGINS]
    selection = ",".join(f"probes.{p}" for p in probes)
    arguments = [*plugins, "--config", str(config), "--spec", selection]
    report = workdir / "reports" / f"{REPORT_PREFIX}.report.jsonl"
    report.unlink(missing_ok=True)
    finished = threading.Event()
    follower = threading.Thread(target=_follow, args=(report, finished, on_record), daemon=True)
    if on_record is not None:
        follower.start()
    try:
        returncode, output = _run_launch(arguments, workdir, timeout, started)
    finally:
        finished.set()
        if follower.is_alive():
            follower.join()
    return report, f"(exit {returncode}) ---\n" + output[-1500:]


def _run_launch(arguments: list[str], workdir: Path, timeout: float, started: list) -> tuple[int, str]:
    """``python -m doubleedge.scan.launch ARGUMENTS`` in ``workdir``, forked from this process's
    launcher where there is one (forkserver.py): its exit code and output."""
    env = garak_env(workdir)
    if forkserver.available():
        output = workdir / "garak.out"
        try:
            process = forkserver.launcher(env).start(arguments, workdir, env, output)
        except forkserver.LauncherError as exc:
            raise ScanError(f"{exc} (its error is above){_log_tail(workdir)}") from None
    else:
        command = [sys.executable, "-m", "doubleedge.scan.launch", *arguments]
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace")  # fmt: skip
    started.append(process)  # run_garak kills it if the scan is interrupted
    try:
        if isinstance(process, subprocess.Popen):
            text = process.communicate(timeout=timeout)[0]
        else:
            process.wait(timeout)
            text = output.read_text("utf-8", errors="replace")
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise ScanError(f"garak did not finish within {timeout:.0f} s{_log_tail(workdir)}") from None
    return process.returncode, text


def _one_at_a_time(on_record: Callable[[dict], None]) -> Callable[[dict], None]:
    lock = threading.Lock()

    def locked(record: dict) -> None:
        with lock:
            on_record(record)

    return locked


def _finished_report(report: Path, output: str) -> str:
    """A group's report for joining, once it is known to be complete (garak exits 0 even when not)."""
    try:
        read_report(report)
    except ScanError as exc:
        raise ScanError(f"{exc}\n--- garak output {output}{_log_tail(report.parent.parent)}") from None
    return report.read_text("utf-8").rstrip("\n") + "\n"


def show_progress(echo: Callable[[str], None] | None) -> None:
    """Report each probe of later scans through ``echo`` as garak finishes it (None: quiet)."""
    global _progress
    _progress = echo


def _reporter(
    spec: ScanSpec, prompts: int | None, report: Path
) -> tuple[Callable[[dict], None] | None, Callable[[], None]]:
    """What to do with each record garak adds to its report (a line per probe for the command
    line, a bar of prompts in a notebook, or nothing), and what to do when the scan ends."""
    if _progress is not None:
        echo = _progress
        echo(f"garak: scanning with {spec.spec} ...")
        probes: set[str] = set()

        def line(record: dict) -> None:
            probe = record.get("probe") if record.get("entry_type") == "eval" else None
            if probe and probe not in probes:
                probes.add(probe)
                echo(f"garak: probe {len(probes)} done: {probe}")

        return line, lambda: None
    bar = notebook_bar(prompts, f"garak scan ({spec.lab})", unit="prompt")
    if bar is None:
        return None, lambda: None

    def advance(record: dict) -> None:
        if record.get("entry_type") == "attempt" and record.get("status") == 1:  # a prompt answered
            bar.update(1)
            bar.set_postfix_str(str(record.get("probe_classname", "")))

    def close() -> None:
        bar.set_postfix_str(f"report: {report}")
        bar.close()

    return advance, close


def _follow(report: Path, finished: threading.Event, on_record: Callable[[dict], None]) -> None:
    """Call ``on_record`` for each record that garak adds to the growing report."""
    offset = 0
    while True:
        last_look = finished.wait(0.5)  # after garak ends, one more look reads its last probes
        if not report.is_file():
            if last_look:
                return
            continue
        with open(report, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line garak is still writing waits for the next look
        offset += len(complete)
        for line in complete.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                on_record(record)
        if last_look:
            return


def preflight(chat_url: str, timeout: float = 120) -> None:
    """One ordinary message first: a dead or broken backend fails here, clearly, not mid-scan."""
    request = urllib.request.Request(
        chat_url, data=json.dumps({"message": "Hello"}).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            json.load(response)["reply"]  # the check is that it parses
    except urllib.error.HTTPError as exc:
        raise ScanError(
            f"the bot at {chat_url} answered {exc.code}: {exc.read()[:300].decode(errors='replace')}"
        ) from None
    except (OSError, ValueError, KeyError) as exc:
        raise ScanError(f"the bot at {chat_url} did not answer a test message: {exc}") from None


def scan_url(chat_url: str, spec: ScanSpec, workdir: Path) -> ScanReport:
    """Scan a bot that is already being served at ``chat_url``."""
    preflight(chat_url)
    generator = rest_generator(chat_url, request=spec.request, timeout=spec.request_timeout, name=spec.target_name)
    return run_garak(spec, workdir, generators={"rest": {"RestGenerator": generator}}, timeout=spec.run_timeout)


def scan_bot(bot: ChatBot, spec: ScanSpec, workdir: Path | None = None) -> ScanReport:
    """Serve ``bot`` on a free loopback port for the length of one scan."""
    with _workdir(workdir) as folder, serving(bot) as server:
        return scan_url(server.chat_url, spec, folder)


@contextmanager
def _workdir(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        yield Path(workdir)
        return
    with tempfile.TemporaryDirectory(prefix="doubleedge-scan-") as tmp:
        yield Path(tmp)


def _log_tail(workdir: Path, lines: int = 20) -> str:
    log = workdir / "data" / "garak" / "garak.log"
    if not log.is_file():
        return ""
    tail = log.read_text("utf-8", errors="replace").splitlines()[-lines:]
    return "\n--- garak.log tail ---\n" + "\n".join(tail)
