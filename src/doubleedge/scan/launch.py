"""Run garak: ``python -m doubleedge.scan.launch [--no-course-plugins] <garak args>``.

Every scan starts garak here, for two reasons:

* garak finds plugins only inside its installed package, so this appends the course's
  plugin folders to ``garak.probes.__path__``, ``garak.detectors.__path__`` and
  ``garak.generators.__path__`` and registers each class in garak's plugin cache
  (skipped with ``--no-course-plugins``: a scan of garak's own probes does not need them);
* garak's language service imports nltk at start-up, and nltk imports scipy.stats: about a
  second of every scan, although only translation and a few probes the course does not run
  use nltk. :func:`defer_nltk` loads it on first use instead, so a scan that needs it gets
  the same module, and one that does not never pays for it;
* each promptinject probe builds all of its 700 prompts before the prompt cap keeps a few,
  and deep-copies every prompt setting for each, although it replaces most of the copy at
  once: about 0.7 s per probe. :func:`lighter_promptinject` skips the copies it throws away
  and builds a prompt when the probe first reads it: the probe shuffles all 700 and reads only
  the ones its cap keeps (20 in a course scan). The prompts, their settings, hashes and order
  are the same;
* garak imports jsonschema (for its payload files), and jsonschema imports ``rfc3987_syntax``
  when it is installed (Jupyter's event logging asks for it): that module compiles 38 lark
  grammars at import, 1.4 to 1.7 s of a 3.3 s Lab 01 scan on an idle 2-core machine, only to
  check the "iri" string formats that garak's schemas never use. :func:`skip_iri_formats`
  keeps it out of the processes of the kit that import jsonschema. garak validates its payload
  files with no format checker at all, so :func:`skip_format_libraries` keeps every optional
  format library out of garak's process (``isoduration`` alone imports ``arrow``: 60 ms);
* garak imports httpx and aiohttp at start and around every probe only to read and set their
  user-agent strings, although the course's generators send their requests with ``requests``:
  about 0.5 s of CPU per scan. :func:`agents_for_loaded_libraries` sets garak's user agent on
  the HTTP libraries that are loaded (``requests`` always) and imports no other;
* garak validates each payload file it loads with jsonschema: importing jsonschema and building
  a validator cost about a quarter of a Lab 01 scan's CPU, to check a schema that asks only for
  a few keys and their types. :func:`validate_payloads_directly` checks such a plain schema
  itself and imports jsonschema only for any other schema, or for the message when a payload
  file fails the check;
* garak's REST generator sends each prompt with ``requests.post``: a new session, a new
  connection and, in the bot's server, a new thread, for every prompt. :func:`keep_alive_rest`
  gives each generator one ``requests.Session``, so a scan's prompts share one kept-alive
  connection (the bot's server sets TCP_NODELAY, else each reply would wait for a delayed
  ACK): 143 prompts cost the two sides together about half the CPU;
* garak's evaluator imports its bootstrap confidence intervals at start, and numpy with them
  (about 70 ms of every scan), although course scans ask for no interval
  (``confidence_interval_method: none``). :func:`defer_bootstrap_ci` loads that module, and
  numpy, on the first call instead.

Then it hands over to ``garak.cli.main``, as ``python -m garak`` does.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent / "plugins"
KINDS = ("probes", "detectors", "generators")
NO_COURSE_PLUGINS = "--no-course-plugins"
GARAK_NLTK = "garak.resources.api.nltk"  # garak's wrapper around nltk: importing it imports nltk
GARAK_BOOTSTRAP_CI = "garak.analyze.bootstrap_ci"  # imports numpy at the top
GARAK_PAYLOADS = "garak.payloads"  # imports jsonschema at the top, to check each payload file
JSON_TYPES = {"object": dict, "array": list, "string": str}  # as jsonschema's default type checker reads them
PLAIN_KEYWORDS = {"type", "properties", "items", "required"}
IRI_SYNTAX = "rfc3987_syntax"  # jsonschema's optional checker of the "iri" formats
FORMAT_LIBRARIES = (IRI_SYNTAX, "rfc3987", "rfc3986_validator", "rfc3339_validator", "isoduration", "uri_template",
                    "webcolors", "jsonpointer", "fqdn")  # fmt: skip


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


def defer_nltk() -> None:
    """Make garak's nltk wrapper a lazy module: it runs (importing nltk) when first used."""
    if GARAK_NLTK in sys.modules:
        return
    spec = importlib.util.find_spec(GARAK_NLTK)
    if spec is None or spec.loader is None:  # another garak layout: leave it alone
        return
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[GARAK_NLTK] = module
    spec.loader.exec_module(module)
    parent, _, name = GARAK_NLTK.rpartition(".")
    setattr(sys.modules[parent], name, module)


def defer_import(name: str) -> None:
    """A stand-in for module ``name`` that imports the real one when one of its names is first
    read. (Not a LazyLoader: Python 3.11's ``import name`` reads the module's ``__spec__``, and
    a lazy module loads on any read.)"""
    if name in sys.modules:
        return

    def load_and_get(attribute: str) -> object:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]  # the import below loads the real module
        return getattr(importlib.import_module(name), attribute)

    stand_in = types.ModuleType(name)
    stand_in.__getattr__ = load_and_get
    sys.modules[name] = stand_in


def validate_payloads_directly() -> None:
    """garak's payload-file check without jsonschema when garak's schema is a plain one (see the
    module's notes); any other schema, and any file that fails, goes to garak's own check."""
    defer_import("jsonschema")
    payloads = importlib.import_module(GARAK_PAYLOADS)
    garak_check = payloads._validate_payload
    if getattr(garak_check, "direct", False) or not plain_schema(payloads.PAYLOAD_SCHEMA):
        return

    def direct(payload_json: object) -> object:
        # garak's check gives the verdict, and its message, for anything that does not conform
        return True if conforms(payload_json, payloads.PAYLOAD_SCHEMA) else garak_check(payload_json)

    direct.direct = True
    payloads._validate_payload = direct


def plain_schema(schema: object) -> bool:
    """True if a JSON schema uses only ``type`` (object, array or string), ``properties``,
    ``items`` and ``required``: the keywords :func:`conforms` checks exactly as jsonschema does."""
    if not isinstance(schema, dict) or not set(schema) <= PLAIN_KEYWORDS:
        return False
    if "type" in schema and schema["type"] not in JSON_TYPES:
        return False
    required = schema.get("required", [])
    properties = schema.get("properties", {})
    return (isinstance(required, list) and all(isinstance(key, str) for key in required)
            and isinstance(properties, dict) and all(plain_schema(s) for s in properties.values())
            and ("items" not in schema or plain_schema(schema["items"])))  # fmt: skip


def conforms(instance: object, schema: dict) -> bool:
    """Whether ``instance`` matches a :func:`plain_schema` (each keyword applies only to the
    kind of value it is about, as in JSON Schema: ``required`` to objects, ``items`` to arrays)."""
    expected = JSON_TYPES.get(schema.get("type"))
    if expected is not None and not isinstance(instance, expected):
        return False
    if isinstance(instance, dict):
        if any(key not in instance for key in schema.get("required", [])):
            return False
        return all(conforms(instance[key], s) for key, s in schema.get("properties", {}).items() if key in instance)
    if isinstance(instance, list) and "items" in schema:
        return all(conforms(item, schema["items"]) for item in instance)
    return True


def defer_bootstrap_ci() -> None:
    """garak's ``calculate_bootstrap_ci``, imported from its module on first call (see the module's notes)."""
    if GARAK_BOOTSTRAP_CI in sys.modules:
        return

    def calculate_bootstrap_ci(*args, **kwargs):
        del sys.modules[GARAK_BOOTSTRAP_CI]  # this stand-in: the import below loads garak's own
        return importlib.import_module(GARAK_BOOTSTRAP_CI).calculate_bootstrap_ci(*args, **kwargs)

    stand_in = types.ModuleType(GARAK_BOOTSTRAP_CI)
    stand_in.calculate_bootstrap_ci = calculate_bootstrap_ci
    sys.modules[GARAK_BOOTSTRAP_CI] = stand_in


def keep_alive_rest() -> None:
    """garak's REST generator with one kept-alive session per generator (see the module's notes)."""
    try:
        from garak.generators import rest
    except ImportError:  # another garak layout: leave it alone
        return
    init = rest.RestGenerator.__init__
    if getattr(init, "keep_alive", False):
        return

    @functools.wraps(init)
    def keeping_alive(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        if self.method != "get":  # garak puts a prompt in a GET's parameters only for requests.get itself
            import requests

            self.http_function = getattr(requests.Session(), self.method)

    keeping_alive.keep_alive = True
    rest.RestGenerator.__init__ = keeping_alive


def skip_format_libraries() -> None:
    """In garak's process: none of jsonschema's optional format libraries (see the module's notes)."""
    if "jsonschema" not in sys.modules:
        for name in FORMAT_LIBRARIES:
            sys.modules.setdefault(name, None)


def skip_iri_formats() -> None:
    """Keep jsonschema from importing its optional "iri" format checker (see the module's notes)."""
    if "jsonschema" not in sys.modules:  # a jsonschema already imported has paid for it
        sys.modules.setdefault(IRI_SYNTAX, None)  # None: "import rfc3987_syntax" raises ImportError


def agents_for_loaded_libraries() -> None:
    """garak's user-agent helpers, for the HTTP libraries already imported (see the module's notes)."""
    from garak import _config

    if getattr(_config.get_http_lib_agents, "loaded_only", False):
        return
    set_agents = _config.set_http_lib_agents

    def get_loaded() -> dict:
        from requests import utils

        agents = {"requests": utils.default_user_agent}
        if "httpx" in sys.modules:
            agents["httpx"] = sys.modules["httpx"]._client.USER_AGENT
        if "aiohttp" in sys.modules:
            agents["aiohttp"] = sys.modules["aiohttp"].client_reqrep.SERVER_SOFTWARE
        return agents

    def set_loaded(agent_strings: dict) -> None:
        set_agents({k: v for k, v in agent_strings.items() if k == "requests" or k in sys.modules})

    get_loaded.loaded_only = True
    _config.get_http_lib_agents = get_loaded
    _config.set_http_lib_agents = set_loaded


class UnbuiltPrompt(Mapping):
    """One promptinject prompt (its ``hash``, ``settings`` and ``prompt``), built on first read."""

    __slots__ = ("_build", "_built")

    def __init__(self, build: Callable[[], dict]) -> None:
        self._build = build
        self._built: dict | None = None

    def _prompt(self) -> dict:
        if self._built is None:
            self._built = self._build()
        return self._built

    def __getitem__(self, key: str) -> object:
        return self._prompt()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._prompt())

    def __len__(self) -> int:
        return len(self._prompt())


def lighter_promptinject() -> None:
    """promptinject's prompt building with each prompt built when first read, and without deep
    copies of the settings it overwrites at once (see the module's notes)."""
    try:
        from garak.resources.promptinject import prompting
    except ImportError:  # another garak layout: leave it alone
        return
    compile_prompts, build_list = prompting._compile_prompts, prompting._build_product_list
    if not getattr(compile_prompts, "copy_less", False):

        def copy_less(prompt_dicts: dict, current_product: dict) -> dict:
            # It deep-copies prompt_dicts, then updates the copy with current_product: the copies of
            # those keys are dropped unread. Only the prompt_dicts's keys outside current_product need one.
            kept = {k: v for k, v in prompt_dicts.items() if k not in current_product}
            return compile_prompts(kept, current_product)

        copy_less.copy_less = True
        prompting._compile_prompts = copy_less
    if not getattr(build_list, "lazy", False):

        def lazy(products: list, prompts: dict) -> list[UnbuiltPrompt]:
            return [UnbuiltPrompt(functools.partial(_build_one, build_list, product, prompts)) for product in products]

        lazy.lazy = True
        prompting._build_product_list = lazy


def _build_one(build_list: Callable[[list, dict], list], product: tuple, prompts: dict) -> dict:
    return build_list([product], prompts)[0]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    course_plugins = NO_COURSE_PLUGINS not in argv
    argv = [a for a in argv if a != NO_COURSE_PLUGINS]
    defer_nltk()
    defer_bootstrap_ci()
    skip_format_libraries()
    validate_payloads_directly()
    lighter_promptinject()
    agents_for_loaded_libraries()
    keep_alive_rest()
    from garak import cli

    if course_plugins:
        register()
    if hasattr(sys.stdout, "reconfigure"):  # as garak's own entry point does (a console's may not be UTF-8)
        sys.stdout.reconfigure(encoding="utf-8")
    cli.main(argv)


if __name__ == "__main__":
    main()
