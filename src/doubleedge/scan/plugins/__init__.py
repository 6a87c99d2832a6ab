"""The course's own garak plugins, loaded out of tree by ``doubleedge.scan.launch``.

garak discovers plugins only inside its installed package. These folders are appended
to ``garak.probes.__path__``, ``garak.detectors.__path__`` and ``garak.generators.__path__``
and their classes are registered in garak's plugin cache, so that
``--spec probes.doubleedge.CustomerRecords`` works without touching the installed garak.
"""
