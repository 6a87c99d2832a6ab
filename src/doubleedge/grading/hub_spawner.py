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
* ``nice``: learners' servers yield the CPU to the hub and the instructor.
"""

from __future__ import annotations

import os
import resource

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner, set_user_setuid
from traitlets import Integer, Set, Unicode


class RoomSpawner(SimpleLocalProcessSpawner):
    accounts = Set(config=True, help="hub users who run as the Unix account of the same name")
    instructor = Unicode(config=True, help="the instructor runs unlimited, as the hub's user")
    memory_bytes = Integer(0, config=True, help="address space of each learner process (0: no limit)")
    max_tasks = Integer(0, config=True, help="processes and threads of a learner's account (0: no limit)")
    niceness = Integer(0, config=True, help="added to the nice value of learners' servers")

    def own_account(self) -> bool:
        return self.user.name in self.accounts

    def limits(self) -> list[tuple[int, int]]:
        if self.user.name == self.instructor:
            return []
        limits = [(resource.RLIMIT_AS, self.memory_bytes)]
        if self.own_account():
            limits.append((resource.RLIMIT_NPROC, self.max_tasks))
        return [(kind, value) for kind, value in limits if value > 0]

    def make_preexec_fn(self, name):
        become_user = set_user_setuid(name) if self.own_account() else super().make_preexec_fn(name)
        limits = self.limits()
        niceness = self.niceness if self.user.name != self.instructor else 0

        def preexec():
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
