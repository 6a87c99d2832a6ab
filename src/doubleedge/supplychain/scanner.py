"""Scanning model files with picklescan (the scanner Hugging Face's hub runs on uploads).

picklescan reads a pickle's opcodes without running them and lists the *globals* it
would import (module and name: ``builtins.exec``, ``posix.system``...). Each global is
rated against picklescan's lists: ``dangerous`` (a known way to run code),
``suspicious`` (not on its list of safe names) or ``innocuous``. It is a blocklist:
a callable it does not know is only "suspicious", and it never looks at Python files
such as the modelling code that ``trust_remote_code`` would run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from picklescan.scanner import SafetyLevel, scan_file_path

# Files picklescan can parse; safetensors and JSON need no scan (they hold no code).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz", ".zip")


@dataclass(frozen=True)
class Finding:
    file: str  # relative to the scanned folder
    module: str
    name: str
    safety: str  # "dangerous", "suspicious" or "innocuous"

    @property
    def global_name(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class ScanSummary:
    findings: tuple[Finding, ...]
    scanned: tuple[str, ...]
    errors: tuple[str, ...]

    @property
    def dangerous_files(self) -> list[str]:
        return sorted({f.file for f in self.findings if f.safety == "dangerous"})

    @property
    def suspicious_files(self) -> list[str]:
        return sorted({f.file for f in self.findings if f.safety in ("dangerous", "suspicious")})

    def table(self) -> str:
        rows = [f"{f.file:45} {f.safety:11} {f.global_name}" for f in self.findings if f.safety != "innocuous"]
        rows += [f"{e:45} error" for e in self.errors]
        return "\n".join([f"{'file':45} {'rating':11} global", *rows]) if rows else "no findings"


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def scan_path(path: str | Path) -> ScanSummary:
    """Scan a file, or every file under a folder, with picklescan. Never loads anything."""
    path = Path(path)
    base = path if path.is_dir() else path.parent
    findings, scanned, errors = [], [], []
    for file in _files(path):
        relative = file.relative_to(base).as_posix()
        with open(file, "rb") as handle:
            head = handle.read(8)
        looks_pickled = file.suffix in PICKLE_SUFFIXES or head[:1] == b"\x80" or head[:2] == b"PK"
        if not looks_pickled:
            continue
        scanned.append(relative)
        result = scan_file_path(str(file))
        if result.scan_err:
            errors.append(relative)
        for g in result.globals:
            safety = g.safety.value if isinstance(g.safety, SafetyLevel) else str(g.safety)
            findings.append(Finding(relative, g.module, g.name, safety))
    return ScanSummary(tuple(findings), tuple(scanned), tuple(errors))
