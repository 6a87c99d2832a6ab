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
  learner's key. Every server runs as the hub's Unix user, so this keeps honest
  learners apart, not a learner who reads other processes (use one account or one pod
  per learner for that, see the grading guide).

Needs ``jupyterhub`` (Python) and ``configurable-http-proxy`` (npm; found on PATH, in
``$DOUBLEEDGE_CHP`` or in ``.venv/node``). :func:`write_config` is separate from
:func:`start` so the tests and the Kubernetes docs use the same settings.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
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
) -> Path:
    """``<course>/hub/jupyterhub_config.py`` and the learners' nbgrader config; returns the config path."""
    hub = course.root / "hub"
    (hub / "users").mkdir(parents=True, exist_ok=True)
    learner_config = hub / "learner-config"
    learner_config.mkdir(exist_ok=True)
    (learner_config / "nbgrader_config.py").write_text(
        "import os\n\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.Exchange.root = {str(course.exchange)!r}\n"
        "# Every server runs as the same Unix user here: nbgrader must name learners by their hub name.\n"
        'c.CourseDirectory.student_id = os.environ.get("JUPYTERHUB_USER", "*")\n',
        "utf-8",
    )
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
        "singleuser": str(Path(sys.executable).with_name("jupyterhub-singleuser")),
        "python_bin": str(Path(sys.executable).parent),
        "learner_jupyter": str(LEARNER_JUPYTER_CONFIG),  # no instructor tools, no news pop-up
        "as_root": os.geteuid() == 0,
        "api_token_file": str(hub / "api_token") if api_token else "",
    }
    if api_token:
        (hub / "api_token").write_text(api_token, "utf-8")
        (hub / "api_token").chmod(0o600)
    (hub / "settings.json").write_text(json.dumps(settings, indent=1), "utf-8")
    config = hub / "jupyterhub_config.py"
    config.write_text(HUB_CONFIG.replace("{settings}", str(hub / "settings.json")), "utf-8")
    return config


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

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(hub / "users" / "{username}")
c.Spawner.cmd = [s["singleuser"]]
c.Spawner.default_url = "/lab"
c.Spawner.args = ["--allow-root"] if s["as_root"] else []
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# JupyterHub passes servers none of its own variables: pre_spawn adds each user's secrets.
c.Spawner.environment = {"PATH": s["python_bin"] + ":/usr/bin:/bin"}


def pre_spawn(spawner):
    """The instructor works in the course folder (formgrader, one gradebook) and grades with the
    course key; a learner works in their home with their own learner key, never the course key."""
    if spawner.user.name == s["instructor"]:
        spawner.notebook_dir = s["course"]
        spawner.environment = dict(spawner.environment, **{COURSE_KEY_ENV: course_key()})
    else:
        config_path = os.pathsep.join([str(hub / "learner-config"), s["learner_jupyter"]])
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
    hub.set_defaults(run=cmd_hub)


def cmd_hub(args: argparse.Namespace) -> int:
    path = Path(args.learners)
    learners = path.read_text("utf-8").split() if path.is_file() else [x for x in args.learners.split(",") if x]
    course = Course(args.dir)
    if not (course.root / "nbgrader_config.py").is_file():
        course.init(learners)
    config = write_config(course, instructor=args.instructor, learners=learners, ip=args.ip, port=args.port)
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
