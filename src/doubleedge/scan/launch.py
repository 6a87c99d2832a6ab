"""Run garak with the course's own plugins: ``python -m doubleedge.scan.launch <garak args>``.

garak finds plugins only inside its installed package, so this appends the course's
plugin folders to ``garak.probes.__path__``, ``garak.detectors.__path__`` and
``garak.generators.__path__``, registers
each class in garak's plugin cache, then hands over to ``garak.cli.main``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent / "plugins"
KINDS = ("probes", "detectors", "generators")


def register() -> list[str]:
    """Make the course plugins loadable and listed; returns their names (``probes.doubleedge.X``)."""
    import garak.detectors
    import garak.generators
    import garak.probes
    from garak._plugins import PluginCache

    packages = {"probes": garak.probes, "detectors": garak.detectors, "generators": garak.generators}
    cache = PluginCache.instance()
    names = []
    for kind in KINDS:
        folder = str(PLUGINS / kind)
        if folder not in packages[kind].__path__:
            packages[kind].__path__.append(folder)
        for path in sorted((PLUGINS / kind).glob("*.py")):
            module = importlib.import_module(f"garak.{kind}.{path.stem}")
            for name, klass in vars(module).items():
                if isinstance(klass, type) and klass.__module__ == module.__name__ and not name.startswith("_"):
                    key = f"{kind}.{path.stem}.{name}"
                    cache[kind][key] = PluginCache.plugin_info(klass)
                    names.append(key)
    return names


def main(argv: list[str] | None = None) -> None:
    from garak import cli

    register()
    cli.main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
