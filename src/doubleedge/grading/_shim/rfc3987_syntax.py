"""Not the real ``rfc3987_syntax``: grading processes skip it.

jsonschema imports it when present, only to check the "iri" string format, which
nothing in grading uses; importing it compiles 38 grammars (about 0.9 s of CPU in
every nbgrader, garak and kernel process). This folder is first on ``PYTHONPATH``
inside the grading sandbox only, and jsonschema treats the ImportError as "absent".
"""

raise ImportError("rfc3987_syntax is not loaded in the grading sandbox (see doubleedge/grading/_shim)")
