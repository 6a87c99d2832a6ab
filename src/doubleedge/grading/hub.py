"""A JupyterHub for a workshop on one machine: learners, an instructor, nbgrader's exchange.

    doubleedge hub --dir doubleedge-course --instructor ada --learners learners.txt

* every user logs in with a shared workshop password (``DOUBLEEDGE_HUB_PASSWORD``;
  JupyterHub's dummy authenticator: fine for a room, not for the internet);
* each user gets a JupyterLab server as a local process, in ``<dir>/hub/users/<name>``;
  learners see the *Assignments* tab (nbgrader's fetch and submit, through the
  course's exchange); the instructor's server opens on the course folder, with
  nbgrader's formgrader on the one gradebook;
* grading never runs in a learner's server: the instructor runs
  ``doubleedge course collect/grade/feedback`` (sandboxed) from a terminal;
* secrets (see target/secrets.py): the hub reads ``DOUBLEEDGE_COURSE_KEY`` from its own
  environment; the instructor's server gets it, each learner's server only that
  learner's key;
* run as root, the hub gives each learner a Unix account of their own (created here,
  home ``<dir>/hub/users/<name>``, mode 0700) and their server runs as it, with memory,
  task, CPU-priority and (with a cpu cgroup) CPU limits (hub_spawner.py); the hub's files, the course's
  solutions, gradebook and grades are root's alone. The instructor's server runs as
  the hub's user. Not root: every server runs as the hub's user, which keeps honest
  learners apart, not one who reads other processes' environments.

Needs ``jupyterhub`` (Python) and ``configurable-http-proxy`` (npm; found on PATH, in
``$DOUBLEEDGE_CHP`` or in ``.venv/node``). :func:`write_config` is separate from
:func:`start` so the tests and the Kubernetes docs use the same settings.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from doubleedge.grading.course import COURSE_ID, Course, check_learner
from doubleedge.start import LEARNER_JUPYTER_CONFIG
from doubleedge.target.secrets import COURSE_KEY_ENV

PROXY_HELP = (
    "configurable-http-proxy not found: install it with "
    "`npm install --prefix .venv/node configurable-http-proxy@5.3.0` or set DOUBLEEDGE_CHP to its path"
)


def proxy_command() -> str:
    candidates = [
        os.environ.get("DOUBLEEDGE_CHP", ""),
        str(Path(sys.prefix) / "node" / "node_modules" / ".bin" / "configurable-http-proxy"),
        shutil.which("configurable-http-proxy") or "",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit(PROXY_HELP)


ACCOUNT_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
ACCOUNT_COMMENT = "Double Edge learner"  # marks the accounts this hub created, the only ones it reuses or removes
# Per learner server (see hub_spawner.py): address space per process, tasks of the account, nice.
DEFAULT_LIMITS = {"memory": "4G", "tasks": 512, "nice": 10, "cpus": 1.0}
CGROUPS = Path("/sys/fs/cgroup")
HUB_CGROUP = "doubleedge-hub"  # under the cpu controller's root: one group per learner below it
# In the course folder, what learners' accounts may reach; everything else (solutions,
# gradebook, submissions, grades, the grading scratch) is made root's alone.
SHARED_IN_COURSE = {"hub", "exchange"}
PRIVATE_COURSE_DIRS = ["source", "release", "submitted", "autograded", "feedback", "grades", "outbox", ".grading"]


def write_config(
    course: Course,
    *,
    instructor: str,
    learners: list[str],
    ip: str = "127.0.0.1",
    port: int = 8000,
    hub_port: int = 8081,
    proxy_api_port: int | None = None,
    api_token: str | None = None,
    limits: dict | None = None,
    accounts: bool | None = None,
    python: str | None = None,
) -> Path:
    """``<course>/hub/jupyterhub_config.py`` and the learners' nbgrader config; returns the config path.

    ``accounts`` (default: when running as root) gives every learner their own Unix account;
    ``python`` is the interpreter every server runs (default: this one), which then needs to
    be one that learners' accounts can run."""
    python = python or sys.executable
    accounts = os.geteuid() == 0 if accounts is None else accounts
    if accounts and os.geteuid() != 0:
        raise SystemExit("one Unix account per learner needs the hub to run as root")
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    hub = course.root / "hub"
    (hub / "users").mkdir(parents=True, exist_ok=True)
    hub.chmod(0o711)  # learners pass through to their home and their config, and list nothing
    (hub / "users").chmod(0o711)
    learner_config = write_learner_config(hub, course)
    settings = {
        "ip": ip,
        "port": port,
        "hub_port": hub_port,
        "proxy_api_port": proxy_api_port or port + 1000,
        "hub": str(hub),
        "course": str(course.root),
        "instructor": check_learner(instructor),
        "learners": [check_learner(x) for x in learners],
        "proxy": proxy_command(),
        "singleuser": [python, "-m", "jupyterhub.singleuser"],
        "path": os.pathsep.join(
            dict.fromkeys([str(Path(python).parent), str(Path(sys.executable).parent), "/usr/bin"])
        ),
        # this venv's Jupyter files (JupyterLab, nbgrader's extensions), also for another ``python``
        "jupyter_data": str(Path(sys.prefix) / "share" / "jupyter"),
        "jupyter_config": str(Path(sys.prefix) / "etc" / "jupyter"),
        "learner_jupyter": str(LEARNER_JUPYTER_CONFIG),  # no instructor tools, no news pop-up
        "api_token_file": str(hub / "api_token") if api_token else "",
        "accounts": [check_learner(x) for x in learners] if accounts else [],
        "memory_bytes": parse_size(str(limits["memory"])),
        "max_tasks": int(limits["tasks"]),
        "nice": int(limits["nice"]),
        "cpus": float(limits["cpus"]),
        "cpu_cgroups": "",
    }
    homes = [hub / "users" / name for name in [settings["instructor"], *settings["learners"]]]
    for home in homes:
        home.mkdir(exist_ok=True)
        home.chmod(0o700)
    if accounts:
        make_accounts(course, settings["learners"], reach=[learner_config, *homes[1:], Path(python).resolve()])
        settings["cpu_cgroups"] = cpu_cap(settings["cpus"])
    else:
        print(f"note: no Unix account per learner (that needs the hub to run as root): every server runs as "
              f"{getpass.getuser()}, and a learner can read the others' files and the hub's course key",
              file=sys.stderr)  # fmt: skip
    private = {"api_token": api_token, "settings.json": json.dumps(settings, indent=1),
               "jupyterhub_config.py": HUB_CONFIG.replace("{settings}", str(hub / "settings.json"))}  # fmt: skip
    for name, text in private.items():
        if text is not None:
            write_private(hub / name, text)
    if not (hub / "jupyterhub.sqlite").exists():
        write_private(hub / "jupyterhub.sqlite", "")  # SQLite keeps the mode of the file (and its journals)
    return hub / "jupyterhub_config.py"


def write_learner_config(hub: Path, course: Course) -> Path:
    """The folder of the learners' nbgrader config: the course and its exchange, named by hub name."""
    folder = hub / "learner-config"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o755)
    (folder / "nbgrader_config.py").write_text(
        "import os\n\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.Exchange.root = {str(course.exchange)!r}\n"
        "# Name learners by their hub name (their Unix account has it too, unless the hub is not root).\n"
        'c.CourseDirectory.student_id = os.environ.get("JUPYTERHUB_USER", "*")\n',
        "utf-8",
    )
    return folder


def make_accounts(course: Course, learners: list[str], reach: list[Path]) -> None:
    """The course folder closed to learners but for the exchange and their homes; then their
    accounts, once every name is checked and every path in ``reach`` (and the exchange) is reachable."""
    for name in learners:
        check_account_name(name)
    protect_course(course)
    check_reachable([course.exchange, *reach])
    for name in learners:
        ensure_account(name, course.root / "hub" / "users" / name)


def cpu_cap(cpus: float) -> str:
    """The folder of the learners' cpu cgroups ('' when there is no cap, said in one line)."""
    groups = cpu_cgroups() if cpus > 0 else None
    if cpus > 0 and not groups:
        print(f"note: no cpu cgroup can be made here: learners' servers share the CPU by nice only, "
              f"not capped at {cpus} cores", file=sys.stderr)  # fmt: skip
    return str(groups or "")


def write_private(path: Path, text: str) -> None:
    """A file only the hub's user reads (0600), never readable in between."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, "utf-8")


def parse_size(text: str) -> int:
    """``4G``, ``512M``, ``1048576``: bytes (0: no limit)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = (text[:-1], text[-1].upper()) if text[-1:].upper() in units else (text, "")
    if not number.isdigit():
        raise SystemExit(f"memory limit {text!r}: a number of bytes, or one followed by K, M or G")
    return int(number) * units.get(unit, 1)


def protect_course(course: Course) -> None:
    """Learners' accounts pass through the course folder to the exchange and their homes, nothing else."""
    course.root.chmod(0o711)
    for name in PRIVATE_COURSE_DIRS:
        (course.root / name).mkdir(mode=0o700, exist_ok=True)  # made now, before the instructor's tools make them 0755
    for entry in course.root.iterdir():
        if entry.name not in SHARED_IN_COURSE and not entry.is_symlink():  # chmod would change the target
            entry.chmod(stat.S_IMODE(entry.lstat().st_mode) & 0o700)


def check_account_name(name: str) -> None:
    """JupyterHub lowercases names at login, and the server runs as the account of that name."""
    if not ACCOUNT_NAME.fullmatch(name):
        raise SystemExit(f"learner id {name!r} cannot be a Unix account here: use lowercase letters, digits, "
                         "_ . - (starting with a letter, at most 32 characters)")  # fmt: skip


def ensure_account(name: str, home: Path) -> None:
    """The learner's Unix account, made by this hub (or made before by it); their home, theirs alone."""
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        account = None
    if account and account.pw_gecos != ACCOUNT_COMMENT:
        raise SystemExit(f"learner {name!r} is already an account on this machine that the hub did not create: "
                         "rename the learner (their server would run as that account)")  # fmt: skip
    if account:
        command = ["usermod", "--home", str(home), name]
    else:
        command = ["useradd", "--home-dir", str(home), "--no-create-home", "--shell", "/bin/bash",
                   "--comment", ACCOUNT_COMMENT, "--user-group", name]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"could not make the account for learner {name!r}: {done.stderr.strip()}")
    account = pwd.getpwnam(name)
    os.chown(home, account.pw_uid, account.pw_gid)
    home.chmod(0o700)


def cpu_cgroups() -> Path | None:
    """The folder for learners' cpu cgroups, made ready (cgroup v1's cpu controller, or v2 with
    cpu delegated below its root); None when this machine does not let the hub make them."""
    v1 = CGROUPS / "cpu"
    try:
        if (v1 / "cpu.cfs_quota_us").is_file():
            (v1 / HUB_CGROUP).mkdir(exist_ok=True)
            return v1 / HUB_CGROUP
        if "cpu" in (CGROUPS / "cgroup.controllers").read_text().split():
            (CGROUPS / "cgroup.subtree_control").write_text("+cpu")
            (CGROUPS / HUB_CGROUP).mkdir(exist_ok=True)
            (CGROUPS / HUB_CGROUP / "cgroup.subtree_control").write_text("+cpu")
            return CGROUPS / HUB_CGROUP
    except OSError:  # read-only, or not delegated to us (a container)
        return None
    return None


def remove_cpu_groups(learners: list[str]) -> None:
    """The learners' cpu cgroups, once their servers have stopped (a group in use stays)."""
    folder = cpu_cgroups() if os.geteuid() == 0 else None
    for name in learners if folder else []:
        try:
            (folder / name).rmdir()
        except OSError:
            pass


def remove_accounts(learners: list[str]) -> list[str]:
    """Delete the accounts this hub created for these learners (not their homes); the names removed."""
    removed = []
    for name in learners:
        try:
            if pwd.getpwnam(name).pw_gecos != ACCOUNT_COMMENT:
                continue
        except KeyError:
            continue
        subprocess.run(["userdel", name], check=True, capture_output=True)
        removed.append(name)
    return removed


def check_reachable(paths: list[Path]) -> None:
    """Learners' accounts must pass through every folder above their home, the exchange and the
    Python their server runs (a venv made from a Python in root's home is out of their reach)."""
    for path in paths:
        program = [path.resolve()] if path.is_file() else []  # the Python itself must be runnable too
        for folder in [*reversed(path.resolve().parents), *program]:
            if not folder.stat().st_mode & stat.S_IXOTH:
                raise SystemExit(f"learners' accounts cannot reach {path}: {folder} is closed to other users "
                                 "(put the course folder or the Python elsewhere, see --python, "
                                 f"or `chmod o+x {folder}`)")  # fmt: skip


def shared_python(folder: Path) -> str:
    """This venv's Python where learners' accounts can run it: itself when they can reach it,
    else a venv in ``folder`` made from the system's Python of the same version that reads this
    venv's packages (the packages must be readable by all; compiled ones need the same minor version)."""
    own = Path(sys.executable)
    try:
        check_reachable([own.resolve()])
        return str(own)
    except SystemExit:
        pass
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/local/bin:/usr/bin")
    if not system:
        raise SystemExit(f"{own} is out of learners' reach and there is no system {version} to run the servers")
    venv = folder / "learner-python"
    subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True)
    packages = next(Path(p) for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))
    pth = f"import site; site.addsitedir({str(packages)!r})\n"  # addsitedir: .pth files in there count too
    (venv / "lib" / version / "site-packages" / "course.pth").write_text(pth, "utf-8")
    return str(venv / "bin" / "python")


HUB_CONFIG = '''"""JupyterHub for a Double Edge workshop (written by `doubleedge hub`; settings in settings.json)."""

import json
import os
from pathlib import Path

from doubleedge.target.secrets import COURSE_KEY_ENV, course_key, learner_environment

c = get_config()  # noqa: F821
s = json.loads(Path("{settings}").read_text())
hub = Path(s["hub"])

c.JupyterHub.ip = s["ip"]
c.JupyterHub.port = s["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = s["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = [s["proxy"]]
c.ConfigurableHTTPProxy.pid_file = str(hub / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{hub / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(hub / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(hub / "jupyterhub.pid")

# One shared workshop password; role names need 3+ characters.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ.get("DOUBLEEDGE_HUB_PASSWORD", "")
c.Authenticator.allowed_users = {s["instructor"], *s["learners"]}
c.Authenticator.admin_users = {s["instructor"]}

# Learners with an account run as it, with limits; see doubleedge/grading/hub_spawner.py.
c.JupyterHub.spawner_class = "doubleedge.grading.hub_spawner.RoomSpawner"
c.RoomSpawner.home_dir_template = str(hub / "users" / "{username}")
c.RoomSpawner.accounts = set(s["accounts"])
c.RoomSpawner.instructor = s["instructor"]
c.RoomSpawner.memory_bytes = s["memory_bytes"]
c.RoomSpawner.max_tasks = s["max_tasks"]
c.RoomSpawner.niceness = s["nice"]
c.RoomSpawner.cpus = s["cpus"]
c.RoomSpawner.cpu_cgroups = s["cpu_cgroups"]
c.Spawner.cmd = s["singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# JupyterHub passes servers none of its own variables: pre_spawn adds each user's secrets.
c.Spawner.environment = {"PATH": s["path"], "JUPYTER_PATH": s["jupyter_data"],
                         "JUPYTERLAB_DIR": str(Path(s["jupyter_data"]) / "lab"),
                         "JUPYTER_CONFIG_PATH": s["jupyter_config"]}


def pre_spawn(spawner):
    """The instructor works in the course folder (formgrader, one gradebook) and grades with the
    course key; a learner works in their home with their own learner key, never the course key."""
    if spawner.user.name == s["instructor"]:
        spawner.notebook_dir = s["course"]
        spawner.environment = dict(spawner.environment, **{COURSE_KEY_ENV: course_key()})
    else:
        config_path = os.pathsep.join([str(hub / "learner-config"), s["learner_jupyter"], s["jupyter_config"]])
        spawner.environment = dict(spawner.environment, JUPYTER_CONFIG_PATH=config_path,
                                   **learner_environment(spawner.user.name))


c.Spawner.pre_spawn_hook = pre_spawn

if s["api_token_file"]:  # automation (the tests, a grading job): a service with just what it needs
    c.JupyterHub.services = [{"name": "course-admin", "api_token": Path(s["api_token_file"]).read_text().strip()}]
    c.JupyterHub.load_roles = [
        {
            "name": "course-admin",
            "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "list:users", "read:users"],
            "services": ["course-admin"],
        }
    ]
'''


def start(config: Path, *, password: str | None = None, wait: bool = True) -> subprocess.Popen:
    """Run ``jupyterhub -f config`` from the hub folder (its own process group)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if password is not None:
        env["DOUBLEEDGE_HUB_PASSWORD"] = password
    if not env.get("DOUBLEEDGE_HUB_PASSWORD"):
        raise SystemExit("set DOUBLEEDGE_HUB_PASSWORD: the workshop password every user logs in with")
    command = [str(Path(sys.executable).with_name("jupyterhub")), "-f", str(config)]
    process = subprocess.Popen(command, cwd=config.parent, env=env, start_new_session=True)
    if wait:
        try:
            process.wait()
        except KeyboardInterrupt:
            process.terminate()
            process.wait(timeout=30)
    return process


def add_hub_command(sub) -> None:
    hub = sub.add_parser("hub", help="a JupyterHub for a workshop on this machine (learners, instructor, exchange)")
    hub.add_argument("--dir", default="doubleedge-course", help="the course folder (created if missing)")
    hub.add_argument("--instructor", required=True, help="the instructor's user name (admin, formgrader)")
    hub.add_argument("--learners", required=True, help="a file with one learner id per line, or a,b,c")
    hub.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: loopback only)")
    hub.add_argument("--port", type=int, default=8000)
    hub.add_argument("--memory", default=DEFAULT_LIMITS["memory"],
                     help="address space of each learner process, e.g. 4G (0: no limit)")  # fmt: skip
    hub.add_argument("--tasks", type=int, default=DEFAULT_LIMITS["tasks"],
                     help="processes and threads per learner account (0: no limit)")  # fmt: skip
    hub.add_argument("--python", help="the Python every server runs (default: this one; learners' accounts "
                     "must be able to run it and read the course's packages)")  # fmt: skip
    hub.add_argument("--cpus", type=float, default=DEFAULT_LIMITS["cpus"],
                     help="cores per learner server at most, where a cpu cgroup can be made (0: no cap)")  # fmt: skip
    hub.add_argument("--nice", type=int, default=DEFAULT_LIMITS["nice"], help="CPU priority of learners' servers")
    hub.set_defaults(run=cmd_hub)


def cmd_hub(args: argparse.Namespace) -> int:
    path = Path(args.learners)
    learners = path.read_text("utf-8").split() if path.is_file() else [x for x in args.learners.split(",") if x]
    course = Course(args.dir)
    if not (course.root / "nbgrader_config.py").is_file():
        course.init(learners)
    limits = {"memory": args.memory, "tasks": args.tasks, "nice": args.nice, "cpus": args.cpus}
    config = write_config(course, instructor=args.instructor, learners=learners, ip=args.ip, port=args.port,
                          limits=limits, python=args.python)  # fmt: skip
    if not os.environ.get(COURSE_KEY_ENV):
        print(f"warning: {COURSE_KEY_ENV} is not set: learners' codes come from the public key, and anyone "
              "can compute them (set a private key, the same one you grade with)", file=sys.stderr)  # fmt: skip
    if args.ip not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the hub listens on {args.ip}: anyone on the network who knows the password can log in",
              file=sys.stderr)  # fmt: skip
    print(f"JupyterHub at http://{args.ip}:{args.port} (config: {config}); Ctrl-C stops it", flush=True)
    start(config)
    return 0


def new_token() -> str:
    return secrets.token_hex(32)
