"""Reading garak's ``report.jsonl``: one row per probe and detector."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


class ScanError(RuntimeError):
    """garak did not finish (it exits 0 even then); the message carries its log tail."""


@dataclass(frozen=True)
class ProbeResult:
    probe: str
    detector: str
    attempts: int
    hits: int

    @property
    def attack_success_rate(self) -> float:
        return self.hits / self.attempts if self.attempts else 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"attack_success_rate": round(self.attack_success_rate, 4)}


@dataclass(frozen=True)
class ScanReport:
    results: tuple[ProbeResult, ...]
    report_path: Path | None = None

    @property
    def attempts(self) -> int:
        return sum(r.attempts for r in self.results)

    @property
    def hits(self) -> int:
        return sum(r.hits for r in self.results)

    @property
    def overall_attack_success_rate(self) -> float:
        """Hits over all evaluated attempts (every prompt weighs the same)."""
        return self.hits / self.attempts if self.attempts else 0.0

    def by_probe(self) -> dict[str, ProbeResult]:
        return {r.probe: r for r in self.results}

    def probe_rates(self) -> dict[str, float]:
        """Each probe's attack success rate (its worst detector's), for feedback and summaries."""
        rates: dict[str, float] = {}
        for r in self.results:
            rates[r.probe] = max(rates.get(r.probe, 0.0), round(r.attack_success_rate, 4))
        return rates

    def table(self) -> str:
        """A plain-text table for terminals and notebooks."""
        rows = [f"{'probe':34} {'detector':32} {'attempts':>8} {'hits':>5} {'ASR':>7}"]
        for r in self.results:
            rows.append(f"{r.probe:34} {r.detector:32} {r.attempts:8d} {r.hits:5d} {r.attack_success_rate:7.1%}")
        rows.append(f"{'overall':34} {'':32} {self.attempts:8d} {self.hits:5d} {self.overall_attack_success_rate:7.1%}")
        return "\n".join(rows)


def reused_scan(report: object, spec) -> ScanReport:
    """``report`` when it is a scan with exactly ``spec``'s probes (a ``ScanSpec``): a learner's own
    re-scan, which a preview reads instead of running garak again. ValueError, saying what to do, if not."""
    if not isinstance(report, ScanReport):
        raise ValueError(f"pass the ScanReport your scan cell made (got {type(report).__name__}): re-run that cell")
    ran, expected = {r.probe for r in report.results}, set(spec.probes)
    if ran != expected:
        other = sorted(ran ^ expected)[:3]
        raise ValueError(f"that scan is not Lab {spec.lab}'s scan (it differs in {', '.join(other)}): re-run the scan cell")
    return report


def read_report(path: Path | str) -> ScanReport:
    """Parse a garak report. Raises ScanError if the run did not complete."""
    path = Path(path)
    if not path.is_file():
        raise ScanError(f"no garak report at {path}")
    results: list[ProbeResult] = []
    completed = False
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ScanError(f"{path}:{number}: not JSON ({exc})") from None
        kind = record.get("entry_type") if isinstance(record, dict) else None
        if kind == "eval":
            results.append(_probe_result(record, f"{path}:{number}"))
        elif kind == "completion":
            completed = True
    if not completed:
        raise ScanError(f"garak run did not complete (no completion record in {path})")
    return ScanReport(tuple(sorted(results, key=lambda r: (r.probe, r.detector))), path)


def _probe_result(record: dict, where: str) -> ProbeResult:
    try:
        return ProbeResult(
            probe=str(record["probe"]),
            detector=str(record["detector"]),
            attempts=int(record["total_evaluated"]),
            hits=int(record["fails"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ScanError(f"{where}: malformed eval record ({type(exc).__name__}: {exc})") from None


def hits_in(path: Path | str) -> list[dict]:
    """The prompts and outputs that scored as hits (from the status-2 attempt records)."""
    path = Path(path)
    if not path.is_file():
        raise ScanError(f"no garak report at {path}")
    found = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        try:
            record = json.loads(line) if line.strip() else {}
        except json.JSONDecodeError as exc:
            raise ScanError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(record, dict) or record.get("entry_type") != "attempt" or record.get("status") != 2:
            continue
        for detector, scores in record.get("detector_results", {}).items():
            if any(s is not None and s >= 0.5 for s in scores):
                found.append(
                    {
                        "probe": record["probe_classname"],
                        "detector": detector,
                        "prompt": _last_turn_text(record["prompt"]),
                        "output": _output_text(record.get("outputs", [])),
                    }
                )
    return found


def _last_turn_text(prompt: dict) -> str:
    turns = prompt.get("turns", [])
    return turns[-1]["content"]["text"] if turns else ""


def _output_text(outputs: list) -> str:
    first = outputs[0] if outputs else None
    return (first or {}).get("text", "") if isinstance(first, dict) else str(first or "")
