"""Running learners' code in a sandbox: bubblewrap (Linux user namespaces) plus rlimits.

Everything a submission runs goes through here: the Jupyter kernel that nbgrader
autogrades with, and the fresh process that runs the learner's extracted code for
the authoritative score. A sandboxed process

* has its own network namespace: no network, only its own loopback (which bubblewrap
  brings up), enough for the bot and garak to talk inside it;
* sees the system (``/usr``, the Python installation, the virtual environment, the
  ``doubleedge`` package) read-only, a few synthetic files in ``/etc``, and nothing
  else of the host: not the course folder, ``source/``, the gradebook, other
  learners' files, the held-out attacks, nor the repository's ``labs/`` and
  ``graders/``; folders given as ``hidden`` (the course's reference solutions, for the
  runner of learner code and for nbgrader's kernel) are empty in it, but for the files
  given as ``kept``;
* runs as the unprivileged uid/gid 65534 in its own user, pid, ipc and uts
  namespaces, and dies with its parent;
* works in size-capped tmpfs folders (``/grading``, with ``HOME``, and ``/tmp``), and may
  write to one host folder only: its own scratch folder, bound at the same path;
* has limits (``prlimit``): address space, CPU seconds, processes, open files and
  file size; the caller adds a wall-clock timeout.

``python -m doubleedge.grading.sandbox kernel -f CONNECTION_FILE`` is the kernel
launcher that the ``doubleedge-sandbox`` kernelspec runs; it reads its settings from
the environment that the grader gives nbgrader (see :func:`kernel_environment`).

Without bubblewrap (macOS, a container without user namespaces) :class:`NoSandbox`
keeps the same interface with the limits and timeouts only, and says so: use it to
grade your own notebook, never a class.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

from doubleedge.paths import CACHE_ENV, cache_dir
from doubleedge.progressbar import BARS_ENV
from doubleedge.progressbar import OFF as BARS_OFF
from doubleedge.realmodel import ENV as REAL_MODEL_ENV
from doubleedge.realmodel import OFF as REAL_MODEL_OFF
from doubleedge.selfcheck import GRADED_KERNEL_ENV
from doubleedge.target.secrets import COURSE_KEY_ENV, LEARNER_ENV, LEARNER_KEY_ENV, learner_environment

KERNEL_NAME = "doubleedge-sandbox"
NOBODY = 65534
WORKDIR = "/grading"
HOME = "/grading/home"
MPLCONFIGDIR = f"{HOME}/.config/matplotlib"  # matplotlib's settings and font list (see build_font_list)
# Environment variables the grader passes to nbgrader for the kernel launcher.
ENV_SCRATCH = "DOUBLEEDGE_SANDBOX_SCRATCH"
ENV_LIMITS = "DOUBLEEDGE_SANDBOX_LIMITS"
ENV_MODE = "DOUBLEEDGE_SANDBOX"
ENV_IPC = "DOUBLEEDGE_KERNEL_IPC"
ENV_HIDDEN = "DOUBLEEDGE_SANDBOX_HIDDEN"  # JSON {"hidden": [folders], "kept": [files]} for the kernel
# Variables a sandboxed process may inherit; everything else is dropped. Never the course key:
# learner code gets its own learner key, and the checker the course key, each passed by name.
PASSED_ENV = ("DOUBLEEDGE_LEARNER", "DOUBLEEDGE_LAB_PATH", "LANG", "LC_ALL", "TZ")
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "MPLBACKEND": "Agg",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}
SHIM_DIR = Path(__file__).with_name("_shim")
_counter = itertools.count()


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed process tree (each process gets the rlimits)."""

    memory_bytes: int = 3 * 2**30  # RLIMIT_AS per process; garak needs ~1.5 GB of address space
    cpu_seconds: int = 900  # RLIMIT_CPU per process
    processes: int = 256  # tasks (threads count): RLIMIT_NPROC, and the sandbox's pids cgroup when there is one
    total_memory_bytes: int = 4 * 2**30  # the whole sandbox, when it gets a memory cgroup
    open_files: int = 1024  # RLIMIT_NOFILE
    file_bytes: int = 64 * 2**20  # RLIMIT_FSIZE: the largest file it may write
    tmpfs_bytes: int = 256 * 2**20  # the size of /grading and of /tmp: all it can write
    output_bytes: int = 1 * 2**20  # output kept per notebook cell (the rest is dropped)
    cell_seconds: int = 300  # wall clock per notebook cell
    notebook_seconds: int = 900  # wall clock per notebook (nbgrader autograde)
    call_seconds: int = 30  # wall clock per call into learner code (authoritative run)
    run_seconds: int = 600  # wall clock of one authoritative run

    def to_env(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_env(cls, text: str | None) -> Limits:
        return cls(**json.loads(text)) if text else cls()

    def prlimit_args(self) -> list[str]:
        return [
            f"--as={self.memory_bytes}",
            f"--cpu={self.cpu_seconds}",
            f"--nproc={self.processes}",
            f"--nofile={self.open_files}",
            f"--fsize={self.file_bytes}",
            "--core=0",
        ]


class SandboxError(RuntimeError):
    pass


class Cgroup:
    """Limits for a whole sandbox (all its processes together): a pids and a memory cgroup.

    rlimits are per process, and the kernel does not apply RLIMIT_NPROC to a process
    whose real uid is root, which is what a root grader's sandbox is on the host (the
    uid 65534 inside maps to it). So when this process may create cgroups (root, v1 or
    v2), every sandbox gets its own: ``pids.max`` stops fork bombs and the memory limit
    covers many processes each under RLIMIT_AS. A non-root grader's sandbox is held by
    RLIMIT_NPROC instead (it counts that user's tasks in the sandbox's namespace).
    """

    PARENT = "doubleedge"

    def __init__(self, name: str, limits: Limits) -> None:
        self.dirs: list[Path] = []
        for base, settings in _cgroup_bases(limits):
            folder = base / self.PARENT / name
            try:
                folder.mkdir(parents=True, exist_ok=True)
                for key, value in settings.items():
                    (folder / key).write_text(str(value))
            except OSError:
                continue
            self.dirs.append(folder)

    def join_command(self, argv: list[str]) -> list[str]:
        """``argv`` started by a shell that first moves itself into the cgroups (no race with forks)."""
        if not self.dirs:
            return argv
        procs = [str(d / "cgroup.procs") for d in self.dirs]
        script = (
            'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 97; done; shift $(($# - N)); exec "$@"'
        )
        return ["/bin/sh", "-c", script.replace("N", str(len(argv))), "sh", *procs, "--", *argv]

    def join_self(self) -> None:
        for folder in self.dirs:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        """Kill whatever is left in the cgroups, then remove them."""
        for folder in self.dirs:
            for _ in range(50):
                try:
                    pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.05)
            with contextlib.suppress(OSError):
                folder.rmdir()


@cache
def _cgroup_roots() -> tuple[tuple[str, Path], ...]:
    """(kind, path) of writable cgroup hierarchies with the pids or memory controller."""
    roots = []
    mounts = Path("/proc/self/mounts").read_text().splitlines() if Path("/proc/self/mounts").is_file() else []
    for line in mounts:
        parts = line.split()
        if len(parts) < 4:
            continue
        path, kind, options = Path(parts[1]), parts[2], parts[3].split(",")
        if kind == "cgroup" and ("pids" in options or "memory" in options):
            roots.append(("pids" if "pids" in options else "memory", path))
        elif kind == "cgroup2" and (path / "cgroup.controllers").is_file():
            controllers = (path / "cgroup.controllers").read_text().split()
            if "pids" in controllers:
                roots.append(("v2", path))
    return tuple((k, p) for k, p in roots if os.access(p, os.W_OK))


def _cgroup_bases(limits: Limits) -> list[tuple[Path, dict]]:
    bases = []
    for kind, path in _cgroup_roots():
        if kind == "pids":
            bases.append((path, {"pids.max": limits.processes}))
        elif kind == "memory":
            bases.append((path, {"memory.limit_in_bytes": limits.total_memory_bytes}))
        else:
            parent = path / Cgroup.PARENT
            with contextlib.suppress(OSError):
                parent.mkdir(exist_ok=True)
                (path / "cgroup.subtree_control").write_text("+pids +memory")
                (parent / "cgroup.subtree_control").write_text("+pids +memory")
            bases.append((path, {"pids.max": limits.processes, "memory.max": limits.total_memory_bytes}))
    return bases


@dataclass(frozen=True)
class Run:
    """What a sandboxed command did: exit code, captured (capped) output, and whether it timed out."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False


@dataclass
class Sandbox:
    """Bubblewrap: see the module docstring for what the process can and cannot reach."""

    limits: Limits = field(default_factory=Limits)
    name: str = "bwrap"
    contained: bool = True

    def argv(
        self,
        command: Sequence[str],
        scratch: Path,
        *,
        env: Mapping[str, str] | None = None,
        readonly: Sequence[Path] = (),
        shared: Sequence[Path] = (),
        hidden: Sequence[Path] = (),
        kept: Sequence[Path] = (),
        chdir: str = WORKDIR,
    ) -> list[str]:
        """The full command line: bwrap, then prlimit inside the new namespaces, then ``command``.

        ``scratch`` and the ``shared`` folders (files two sandboxes exchange) are bound
        read-write at their own paths; ``readonly`` folders are bound read-only. ``hidden``
        folders (inside those) become empty and read-only, all but the ``kept`` files in them:
        nothing in the process can read what they held, by any path or any import. ``prlimit``
        runs inside the sandbox so that the process limit counts the sandbox's own uid, not the grader's.
        """
        scratch = Path(scratch).resolve()
        args = [
            bwrap_path(),
            "--unshare-all",  # user, ipc, pid, net (only a loopback), uts, cgroup
            "--die-with-parent",
            "--new-session",  # no TIOCSTI into the grader's terminal
            "--uid", str(NOBODY),
            "--gid", str(NOBODY),
            "--hostname", "sandbox",
            "--proc", "/proc",
            "--dev", "/dev",
            # tmpfs first: binds below may sit under /tmp (a scratch folder usually does)
            "--size", str(self.limits.tmpfs_bytes), "--tmpfs", "/tmp",
            "--size", str(self.limits.tmpfs_bytes), "--tmpfs", WORKDIR,
            "--dir", HOME,
            *font_list_args(),
            "--ro-bind", "/usr", "/usr",
        ]  # fmt: skip
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            path = Path(top)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), top]
            elif path.is_dir():
                args += ["--ro-bind", top, top]
        args += ["--ro-bind", str(etc_dir()), "/etc"]
        for path in sorted({*python_paths(), *(Path(p).resolve() for p in readonly)}):
            args += ["--ro-bind", str(path), str(path)]
        args += _hiding_args([Path(p).resolve() for p in hidden], [Path(p).resolve() for p in kept])
        for path in [scratch, *(Path(p).resolve() for p in shared)]:
            args += ["--bind", str(path), str(path)]
        args += ["--remount-ro", "/"]  # the root itself (mount points only) becomes read-only
        args += ["--chdir", chdir, "--clearenv"]
        for key, value in sandbox_env(env).items():
            args += ["--setenv", key, value]
        args += ["--", shutil.which("prlimit") or "/usr/bin/prlimit", *self.limits.prlimit_args(), "--", *command]
        return args

    def run(
        self,
        command: Sequence[str],
        scratch: Path,
        *,
        env: Mapping[str, str] | None = None,
        readonly: Sequence[Path] = (),
        shared: Sequence[Path] = (),
        hidden: Sequence[Path] = (),
        kept: Sequence[Path] = (),
        timeout: float | None = None,
        pass_fds: Sequence[int] = (),
        stdin: int | None = subprocess.DEVNULL,
        max_output: int = 64 * 1024,
    ) -> Run:
        """Run ``command`` sandboxed; kill the whole tree at ``timeout`` seconds."""
        process = self.popen(command, scratch, env=env, readonly=readonly, shared=shared, hidden=hidden, kept=kept,
                             pass_fds=pass_fds, stdin=stdin)  # fmt: skip
        return finish(process, timeout or self.limits.run_seconds, max_output)

    def popen(
        self,
        command: Sequence[str],
        scratch: Path,
        *,
        env: Mapping[str, str] | None = None,
        readonly: Sequence[Path] = (),
        shared: Sequence[Path] = (),
        hidden: Sequence[Path] = (),
        kept: Sequence[Path] = (),
        pass_fds: Sequence[int] = (),
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = None,
        stderr: object = None,
    ) -> subprocess.Popen:
        build_font_list(self)
        argv = self.argv(command, scratch, env=env, readonly=readonly, shared=shared, hidden=hidden, kept=kept)
        group = Cgroup(f"{Path(scratch).name}-{os.getpid()}-{next(_counter)}", self.limits)
        process = spawn(group.join_command(argv), stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=pass_fds,
                        env=host_env())  # fmt: skip
        process.cgroup = group  # type: ignore[attr-defined]
        return process


@dataclass
class NoSandbox(Sandbox):
    """No isolation, only rlimits and timeouts: for grading your own notebook without bubblewrap.
    Nothing is hidden either: learner code can read the reference solutions."""

    name: str = "none"
    contained: bool = False

    def argv(self, command, scratch, *, env=None, readonly=(), shared=(), hidden=(), kept=(), chdir=WORKDIR) -> list[str]:
        prlimit = shutil.which("prlimit")
        limits = self.limits.prlimit_args()
        limits = [a for a in limits if not a.startswith("--nproc")]  # would count all of the user's processes
        return [prlimit, *limits, "--", *command] if prlimit else list(command)

    def popen(
        self,
        command,
        scratch,
        *,
        env=None,
        readonly=(),
        shared=(),
        hidden=(),
        kept=(),
        pass_fds=(),
        stdin=subprocess.DEVNULL,
        stdout=None,
        stderr=None,
    ):
        work = Path(scratch) / "work"
        (work / "home").mkdir(parents=True, exist_ok=True)
        environment = host_env() | sandbox_env(env) | {"HOME": str(work / "home"), "TMPDIR": str(work)}
        environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin"
        argv = self.argv(command, scratch)
        return spawn(argv, stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=pass_fds, env=environment, cwd=work)


def _hiding_args(hidden: list[Path], kept: list[Path]) -> list[str]:
    """bwrap arguments that put an empty tmpfs over each ``hidden`` folder, bind each ``kept``
    file back into it, then make the folder read-only (nothing can be written in its place)."""
    if stray := [str(k) for k in kept if not any(k.parent == h for h in hidden)]:
        raise ValueError(f"kept files must sit directly in a hidden folder: {stray}")
    args = [a for folder in hidden for a in ("--tmpfs", str(folder))]
    args += [a for path in kept for a in ("--ro-bind", str(path), str(path))]
    return args + [a for folder in hidden for a in ("--remount-ro", str(folder))]


def spawn(argv, *, stdin, stdout, stderr, pass_fds, env, cwd=None) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE if stderr is None else stderr,
        pass_fds=tuple(pass_fds),
        env=env,
        cwd=cwd,
        start_new_session=True,  # one process group: a timeout kills the whole tree
    )


def finish(process: subprocess.Popen, timeout: float, max_output: int) -> Run:
    """Wait for ``process`` (reading at most ``max_output`` bytes of each stream); kill it at ``timeout``."""
    try:
        out, err = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        kill_group(process)
        out, err = process.communicate()
        timed_out = True
    kill_group(process)  # whatever it left behind
    return Run(process.returncode, capped_text(out, max_output), capped_text(err, max_output), timed_out)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group of a process started with ``start_new_session``, and its cgroup."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    group = getattr(process, "cgroup", None)
    if group is not None:
        group.remove()


def capped_text(data: bytes | None, limit: int) -> str:
    """The last ``limit`` bytes of a process's output as text, saying how much was dropped."""
    if not data:
        return ""
    text = data[-limit:].decode("utf-8", errors="replace")
    return text if len(data) <= limit else f"[... {len(data) - limit} bytes dropped ...]\n{text}"


def host_env() -> dict[str, str]:
    """The environment for bwrap itself (a minimal one; the sandbox sets its own)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": os.environ.get("LANG", "C.UTF-8")}


def sandbox_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment inside a sandbox: a fixed set, nothing inherited by accident."""
    env = {
        "PATH": f"{Path(python()).parent}:/usr/bin:/bin",
        "HOME": HOME,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "XDG_CACHE_HOME": f"{HOME}/.cache",
        "XDG_CONFIG_HOME": f"{HOME}/.config",
        "XDG_DATA_HOME": f"{HOME}/.local/share",
        "MPLCONFIGDIR": MPLCONFIGDIR,
        **OFFLINE_ENV,
    }
    env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
    env["PYTHONPATH"] = os.pathsep.join([str(SHIM_DIR), *pythonpath()])
    env.update(extra or {})
    return env


def python() -> str:
    """This interpreter by its real path (a symlinked venv would not exist inside the sandbox)."""
    return str(Path(sys.prefix).resolve() / "bin" / Path(sys.executable).name)


def pythonpath() -> list[str]:
    """This process's PYTHONPATH folders by their real paths: a relative one (``PYTHONPATH=src``)
    would name nothing inside the sandbox, whose processes start in another folder."""
    return [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).is_dir()]


@cache
def python_paths() -> tuple[Path, ...]:
    """Read-only folders a Python process of this installation needs: interpreter, venv, package."""
    import doubleedge

    package_root = Path(doubleedge.__file__).resolve().parents[1]  # src/ of an editable install
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), package_root}
    paths |= {Path(p).resolve() for p in pythonpath()}
    paths |= {Path(p).resolve() for p in os.environ.get("DOUBLEEDGE_LAB_PATH", "").split(os.pathsep) if p}  # labs
    if package_root.name != "src" and package_root.parent in paths:
        paths.discard(package_root)  # a site-packages install: the prefix covers it
    paths = {p for p in paths if not _under_system(p)}
    return tuple(sorted(p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)))


def _under_system(path: Path) -> bool:
    return path == Path("/") or any(path.is_relative_to(p) for p in (Path("/usr"), Path("/etc")))


@cache
def etc_dir() -> Path:
    """A synthetic /etc: users, hosts and name service files, nothing of the host's.

    Written once per machine and user (same content, same folder), read-only inside.
    """
    files = {
        "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\nlearner:x:{NOBODY}:{NOBODY}:learner:{HOME}:/bin/sh\n",
        "group": f"root:x:0:\nlearner:x:{NOBODY}:\n",
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
        "hostname": "sandbox\n",
    }
    copied = [Path("/etc") / n for n in ("ld.so.cache", "localtime") if (Path("/etc") / n).is_file()]
    digest = hashlib.sha256(json.dumps([files, [str(p) for p in copied]]).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"doubleedge-etc-{os.getuid()}-{digest}"
    if folder.is_dir():
        return folder
    staging = Path(tempfile.mkdtemp(prefix="doubleedge-etc-"))
    for name, text in files.items():
        (staging / name).write_text(text, "utf-8")
    for source in copied:
        shutil.copy(source, staging / source.name)
    staging.chmod(0o755)
    try:
        staging.rename(folder)
    except OSError:  # another worker won the race: same content
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def font_list_folder() -> Path:
    """Where matplotlib's font list for sandboxes is kept: one per user, machine and matplotlib."""
    digest = hashlib.sha256(f"{matplotlib_version()} {python()} {os.uname().nodename}".encode()).hexdigest()[:12]
    return cache_dir() / "sandbox-fonts" / digest


@cache
def matplotlib_version() -> str:
    try:
        return importlib.metadata.version("matplotlib")
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def build_font_list(box: Sandbox) -> None:
    """matplotlib's font list, built once in a sandbox and then bound into every sandbox's HOME.

    Each sandbox starts with an empty HOME, so matplotlib's first import in every kernel
    searched the system's fonts again and wrote its list (about 0.3 s of a submission's CPU,
    and a fontconfig error in the kernel's log). Built in a sandbox, the list names exactly the
    fonts a sandbox sees. An empty folder means matplotlib is absent or the build failed:
    then kernels build their own, as before."""
    folder = font_list_folder()
    if folder.is_dir():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="building-", dir=folder.parent))
    try:
        subprocess.run(box.argv([python(), "-c", "import matplotlib.font_manager"], staging,
                                env={"MPLCONFIGDIR": str(staging)}),
                       capture_output=True, timeout=300, env=host_env())  # fmt: skip
        for path in staging.iterdir():  # only the list: matplotlib may leave other caches there
            if not path.name.startswith("fontlist-"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        staging.chmod(0o755)
        staging.rename(folder)
    except (OSError, subprocess.SubprocessError):  # another worker built it first, or no list: kernels build their own
        shutil.rmtree(staging, ignore_errors=True)


def font_list_args() -> list[str]:
    """bwrap arguments binding the font list (see :func:`build_font_list`) read-only where
    matplotlib looks for it; the folder around it stays writable, as matplotlib wants."""
    folder = font_list_folder()
    files = sorted(folder.glob("fontlist-*.json")) if folder.is_dir() else []
    return [a for path in files for a in ("--ro-bind", str(path), f"{MPLCONFIGDIR}/{path.name}")]


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if not path:
        raise SandboxError(BWRAP_MISSING)
    return path


BWRAP_MISSING = (
    "bubblewrap (bwrap) is not installed: install it (Debian/Ubuntu: apt-get install bubblewrap) "
    "to grade submissions in a sandbox, or pass --sandbox none to grade your own notebook without one"
)


@cache
def bwrap_works() -> str:
    """'' if bubblewrap can create its namespaces here, else why not."""
    if not shutil.which("bwrap"):
        return BWRAP_MISSING
    scratch = Path(tempfile.mkdtemp(prefix="doubleedge-probe-"))
    try:
        done = Sandbox().run(["/bin/true"], scratch, timeout=30)
    except OSError as exc:
        return f"bubblewrap failed to start: {exc}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode != 0:
        return (
            "bubblewrap cannot create user namespaces here "
            f"(exit {done.returncode}: {done.stderr.strip()[-300:]}); "
            "see the grading guide (Docker, Kubernetes) or pass --sandbox none for your own notebook"
        )
    return ""


def unavailable_for_tests() -> str:
    """Why the sandbox tests must be skipped here ('' to run them). CI sets DOUBLEEDGE_REQUIRE_SANDBOX=1
    so that a machine without bubblewrap fails those tests instead of skipping them."""
    return "" if os.environ.get("DOUBLEEDGE_REQUIRE_SANDBOX") else bwrap_works()


def make_sandbox(mode: str = "auto", limits: Limits | None = None) -> Sandbox:
    """``bwrap`` (fail if it does not work), ``none``, or ``auto`` (bwrap when it works)."""
    limits = limits or Limits()
    if mode == "none":
        return NoSandbox(limits)
    problem = bwrap_works()
    if not problem:
        return Sandbox(limits)
    if mode == "auto":
        print(f"warning: grading WITHOUT a sandbox: {problem}", file=sys.stderr)
        return NoSandbox(limits)
    raise SandboxError(problem)


# The Jupyter side: a kernelspec whose kernel starts inside the sandbox ------------------


def install_kernelspec(jupyter_dir: Path) -> Path:
    """Write the ``doubleedge-sandbox`` kernelspec under ``jupyter_dir`` (a JUPYTER_PATH entry)."""
    folder = Path(jupyter_dir) / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "doubleedge.grading.sandbox", "kernel", "-f", "{connection_file}"],
        "display_name": "Python 3 (grading sandbox)",
        "language": "python",
        # Signals do not cross into the sandbox's pid namespace: interrupt by message.
        "interrupt_mode": "message",
        "metadata": {"debugger": False},
    }
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1), "utf-8")
    return folder


NBGRADER_CONFIG = """
# --- Added by doubleedge: autograde in the sandbox (doubleedge.grading.sandbox) ---
import os as _os

from nbconvert.preprocessors import ClearMetadataPreprocessor as _ClearMetadata
from nbgrader.preprocessors import (
    AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, ClearOutput, DeduplicateIds,
    IgnorePattern, LimitOutput, OverwriteCells, OverwriteKernelspec, SaveAutoGrades,
)

from doubleedge.grading.nbextras import CappedExecute

# Hidden tests never reach the learner's kernel: they are removed after nbgrader has
# restored the original test cells, so the kernel runs the visible tests only (a
# preview for feedback). The scores come from the authoritative run.
c.Autograde.sanitize_preprocessors = [
    ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, ClearHiddenTests, CheckCellMetadata,
]
c.Autograde.autograde_preprocessors = [
    CappedExecute, IgnorePattern, _ClearMetadata, LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata,
]
c.LimitOutput.max_lines = 300
# Once the last cell has run, its outputs are in: a polite shutdown only waited (0.1 to 0.2 s a learner).
c.Execute.shutdown_kernel = "immediate"
if _os.environ.get("{mode}", "bwrap") != "off":
    c.Execute.kernel_name = "{kernel}"
    c.KernelManager.transport = "ipc"
    if _os.environ.get("{ipc}"):  # the connection file and the sockets: in the bound scratch folder
        c.KernelManager.connection_file = _os.environ["{ipc}"] + ".json"
        c.KernelManager.ip = _os.environ["{ipc}"]
if _os.environ.get("{limits}"):
    import json as _json

    _limits = _json.loads(_os.environ["{limits}"])
    c.Execute.timeout = _limits["cell_seconds"]
    c.CappedExecute.max_output_bytes = _limits["output_bytes"]
"""


def nbgrader_config_block() -> str:
    return (
        NBGRADER_CONFIG.replace("{mode}", ENV_MODE)
        .replace("{kernel}", KERNEL_NAME)
        .replace("{ipc}", ENV_IPC)
        .replace("{limits}", ENV_LIMITS)
    )


SHORT_TEMP_CHARS = 60  # a temporary folder this long still leaves room for the kernel's socket paths


def short_scratch(prefix: str = "dek-") -> Path:
    """A scratch folder with a short path: a kernel's ipc socket paths must fit in 107 bytes.
    In the temporary folder (``$TMPDIR``) when its path is short enough, else in /tmp."""
    base = tempfile.gettempdir()
    if len(base) > SHORT_TEMP_CHARS and os.access("/tmp", os.W_OK):
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def kernel_environment(
    sandbox: Sandbox,
    scratch: Path,
    jupyter_dir: Path,
    learner: str,
    cache: Path | None = None,
    *,
    hidden: Sequence[Path] = (),
    kept: Sequence[Path] = (),
) -> dict[str, str]:
    """Variables for the nbgrader process: where the kernelspec is, and the sandbox for its kernel.
    ``cache``: the kernel's own cache folder, inside ``scratch`` (the lab's judge filled it).
    ``hidden`` and ``kept``: as for ``Sandbox.argv`` (the kernel runs the learner's notebook, so it
    gets the reference solutions hidden as the runner does)."""
    runtime = Path(scratch).resolve() / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    return {
        CACHE_ENV: str(Path(cache).resolve()) if cache else "",  # never the grader's own cache
        "JUPYTER_PATH": str(Path(jupyter_dir).resolve()),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_PLATFORM_DIRS": "1",
        ENV_SCRATCH: str(Path(scratch).resolve()),
        ENV_IPC: str(runtime / "kernel-ipc"),
        ENV_LIMITS: sandbox.limits.to_env(),
        ENV_MODE: sandbox.name,
        ENV_HIDDEN: json.dumps({"hidden": [str(p) for p in hidden], "kept": [str(p) for p in kept]}),
        # The ungraded real-model part would add minutes per submission, and its model is not in the sandbox.
        REAL_MODEL_ENV: REAL_MODEL_OFF,
        **learner_environment(learner),  # the feedback matches what the learner saw; no course key
    }


def kernel_cgroup_name(scratch: Path) -> str:
    return f"kernel-{Path(scratch).name}"


def remove_kernel_cgroup(scratch: Path, limits: Limits) -> None:
    """After nbgrader is done: kill anything the kernel's sandbox left, remove its cgroups."""
    Cgroup(kernel_cgroup_name(scratch), limits).remove()


def launch_kernel(connection_file: str) -> int:
    """Replace this process with the sandboxed kernel (the kernelspec's argv ends here)."""
    scratch = os.environ.get(ENV_SCRATCH)
    if not scratch:
        raise SystemExit(f"{ENV_SCRATCH} is not set: this kernel only runs under `doubleedge grade`")
    limits = Limits.from_env(os.environ.get(ENV_LIMITS))
    sandbox = NoSandbox(limits) if os.environ.get(ENV_MODE) == "none" else Sandbox(limits)
    command = [python(), "-m", "ipykernel_launcher", "-f", str(Path(connection_file).resolve())]
    env = {name: os.environ[name] for name in (LEARNER_ENV, LEARNER_KEY_ENV, CACHE_ENV) if os.environ.get(name)}
    env.setdefault(LEARNER_ENV, "learner")
    env[REAL_MODEL_ENV] = REAL_MODEL_OFF  # whatever launched it: a graded kernel never runs the real model
    env[BARS_ENV] = BARS_OFF  # nor draws progress bars that nobody watches
    env[GRADED_KERNEL_ENV] = "1"  # nor retrains what the grader measures itself (selfcheck.graded_kernel)
    hiding = json.loads(os.environ.get(ENV_HIDDEN) or "{}")
    hidden, kept = hiding.get("hidden", []), hiding.get("kept", [])
    if sandbox.contained:
        build_font_list(sandbox)
        argv = sandbox.argv(command, Path(scratch), env=env, hidden=hidden, kept=kept)
        Cgroup(kernel_cgroup_name(Path(scratch)), limits).join_self()
        os.execve(argv[0], argv, host_env())
    work = Path(scratch) / "work"
    (work / "home").mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    environment = dict(os.environ) | sandbox_env(env) | {"HOME": str(work / "home"), "TMPDIR": str(work)}
    environment.pop(COURSE_KEY_ENV, None)
    argv = sandbox.argv(command, Path(scratch))
    os.execve(argv[0], argv, environment)
    return 1  # not reached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m doubleedge.grading.sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    kernel = sub.add_parser("kernel", help="start an IPython kernel inside the sandbox (kernelspec argv)")
    kernel.add_argument("-f", dest="connection_file", required=True)
    sub.add_parser("check", help="say whether bubblewrap works here")
    args = parser.parse_args(argv)
    if args.command == "kernel":
        return launch_kernel(args.connection_file)
    problem = bwrap_works()
    print(problem or "bubblewrap works: submissions can be graded in the sandbox")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
