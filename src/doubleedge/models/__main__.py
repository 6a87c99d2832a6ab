"""``python -m doubleedge.models``: prepare SmolLM2 (check, convert once, cache) ahead of its first use."""

import sys

from doubleedge.models.gguf import ModelFileError, smollm2_dir

try:
    print(f"smollm2 ready in {smollm2_dir()}")
except ModelFileError as exc:
    print(f"doubleedge: {exc}", file=sys.stderr)
    sys.exit(2)
