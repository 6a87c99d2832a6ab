"""The workshop hub's spawner: each learner's server as that learner's own Unix account, with limits.

JupyterHub's ``LocalProcessSpawner`` becomes the system user named like the hub user;
``doubleedge hub`` creates those accounts when it runs as root (see hub.py). Anyone without
such an account (the instructor, who holds the course key anyway, or every learner when the
hub is not root) runs as the hub's own user, in ``home_dir_template``, as
``SimpleLocalProcessSpawner`` does.

Limits are set between fork and exec, before the server gives up root, so the learner can
lower them but never raise them; the server's kernels and terminals inherit them:

* ``RLIMIT_AS``: the address space of each process (JupyterHub's ``mem_limit`` is not
  enforced by local processes);
* ``RLIMIT_NPROC``: the tasks (processes and threads) of the learner's account, a fork bomb
  stops there. Only for a learner with their own account: for the hub's user it would count
  the hub and every other server too;
* ``nice``: learners' servers yield the CPU to the hub and the instructor;
* a cpu cgroup per learner (``cpus``), when the hub may make them (root, a writable cpu
  controller): at most that many cores for the server and all it starts. The server
  joins its group before it runs, so nothing it starts escapes.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner, set_user_setuid
from traitlets import Float, Integer, Set, Unicode

CFS_PERIOD_US = 100_000


class RoomSpawner(SimpleLocalProcessSpawner):
    accounts = Set(config=True, help="hub users who run as the Unix account of the same name")
    instructor = Unicode(config=True, help="the instructor runs unlimited, as the hub's user")
    memory_bytes = Integer(0, config=True, help="address space of each learner process (0: no limit)")
    max_tasks = Integer(0, config=True, help="processes and threads of a learner's account (0: no limit)")
    niceness = Integer(0, config=True, help="added to the nice value of learners' servers")
    cpus = Float(0.0, config=True, help="cores a learner's server may use at most (0: no cap)")
    cpu_cgroups = Unicode("", config=True, help="the folder of the hub's cpu cgroups ('': none can be made)")

    def own_account(self) -> bool:
        return self.user.name in self.accounts

    def limits(self) -> list[tuple[int, int]]:
        if self.user.name == self.instructor:
            return []
        limits = [(resource.RLIMIT_AS, self.memory_bytes)]
        if self.own_account():
            limits.append((resource.RLIMIT_NPROC, self.max_tasks))
        return [(kind, value) for kind, value in limits if value > 0]

    def cpu_group(self) -> Path | None:
        """The learner's cpu cgroup with its quota (cgroup v1 or v2), made now; None when there is no cap."""
        if self.cpus <= 0 or not self.cpu_cgroups or self.user.name == self.instructor:
            return None
        group = Path(self.cpu_cgroups) / self.user.name
        group.mkdir(exist_ok=True)
        quota = int(self.cpus * CFS_PERIOD_US)
        if (group / "cpu.cfs_quota_us").exists():
            (group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (group / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
        return group

    def make_preexec_fn(self, name):
        become_user = set_user_setuid(name) if self.own_account() else super().make_preexec_fn(name)
        limits = self.limits()
        niceness = self.niceness if self.user.name != self.instructor else 0
        group = self.cpu_group()
        procs = str(group / "cgroup.procs") if group else ""

        def preexec():
            if procs:  # still root here
                descriptor = os.open(procs, os.O_WRONLY)
                os.write(descriptor, str(os.getpid()).encode())
                os.close(descriptor)
            for kind, value in limits:
                resource.setrlimit(kind, (value, value))
            if niceness:
                os.nice(niceness)
            become_user()

        return preexec

    def user_env(self, env):
        if self.own_account():
            return LocalProcessSpawner.user_env(self, env)  # HOME, USER, SHELL of the account
        return super().user_env(env)

    def get_args(self):
        args = super().get_args()
        if os.geteuid() == 0 and not self.own_account():
            args.append("--allow-root")
        return args
