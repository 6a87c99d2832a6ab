"""Reading garak reports (synthetic ones: the integration tests run real garak)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doubleedge.scan import (
    Change,
    ProbeResult,
    ScanError,
    ScanReport,
    ScanSpec,
    compare,
    hits_in,
    plot_comparison,
    read_report,
    reused_scan,
)

START = {"entry_type": "start_run setup", "_config.version": "0.17.1"}
INIT = {"entry_type": "init", "garak_version": "0.17.1", "run": "r-1"}
COMPLETION = {"entry_type": "completion", "end_time": "2026-01-01T00:00:00", "run": "r-1"}


def evaluation(probe: str, detector: str, fails: int, total: int) -> dict:
    """An eval record shaped like garak 0.17's (evaluators/base.py)."""
    return {
        "entry_type": "eval",
        "probe": probe,
        "detector": detector,
        "passed": total - fails,
        "fails": fails,
        "nones": 0,
        "total_evaluated": total,
        "total_processed": total,
    }


def attempt(probe: str, prompt: str, output: str, scores: dict[str, list], status: int = 2) -> dict:
    """An attempt record shaped like garak 0.17's Attempt.as_dict()."""
    return {
        "entry_type": "attempt",
        "uuid": "0000",
        "seq": 0,
        "status": status,
        "probe_classname": probe,
        "prompt": {"turns": [{"role": "user", "content": {"text": prompt, "lang": "en"}}], "notes": {}},
        "outputs": [{"text": output, "lang": "en"}],
        "detector_results": scores,
        "notes": {},
        "goal": "test",
    }


def write(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), "utf-8")
    return path


EVALS = [
    evaluation("promptinject.HijackKillHumans", "promptinject.AttackRogueString", fails=3, total=4),
    evaluation("dan.Dan_11_0", "mitigation.MitigationBypass", fails=1, total=1),
    evaluation("dan.Dan_11_0", "dan.DAN", fails=0, total=1),
    evaluation("encoding.InjectBase64", "encoding.DecodeMatch", fails=2, total=10),
]


@pytest.fixture
def report_path(tmp_path):
    return write(tmp_path / "scan.report.jsonl", [START, INIT, *EVALS, COMPLETION])


# --- read_report ----------------------------------------------------------------


def test_read_report_gives_one_sorted_row_per_probe_and_detector(report_path):
    report = read_report(report_path)
    assert report.results == (
        ProbeResult("dan.Dan_11_0", "dan.DAN", 1, 0),
        ProbeResult("dan.Dan_11_0", "mitigation.MitigationBypass", 1, 1),
        ProbeResult("encoding.InjectBase64", "encoding.DecodeMatch", 10, 2),
        ProbeResult("promptinject.HijackKillHumans", "promptinject.AttackRogueString", 4, 3),
    )
    assert report.report_path == report_path


def test_read_report_accepts_a_string_path(report_path):
    assert read_report(str(report_path)).attempts == 16


def test_read_report_skips_blank_lines(tmp_path):
    path = write(tmp_path / "r.jsonl", ["", EVALS[0], "   ", COMPLETION, ""])
    assert read_report(path).results == (
        ProbeResult("promptinject.HijackKillHumans", "promptinject.AttackRogueString", 4, 3),
    )


def test_completed_run_without_evals_is_an_empty_report(tmp_path):
    report = read_report(write(tmp_path / "r.jsonl", [START, COMPLETION]))
    assert (report.results, report.attempts, report.hits, report.overall_attack_success_rate) == ((), 0, 0, 0.0)


def test_missing_completion_record_raises(tmp_path):
    path = write(tmp_path / "r.jsonl", [START, *EVALS])
    with pytest.raises(ScanError, match="did not complete"):
        read_report(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ScanError, match="no garak report at"):
        read_report(tmp_path / "absent.report.jsonl")


def test_directory_instead_of_file_raises(tmp_path):
    with pytest.raises(ScanError, match="no garak report at"):
        read_report(tmp_path)


def test_non_json_line_raises_with_its_line_number(tmp_path):
    path = write(tmp_path / "r.jsonl", [START, EVALS[0], "{truncated", COMPLETION])
    with pytest.raises(ScanError, match=r"r\.jsonl:3: not JSON"):
        read_report(path)


# --- rates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hits", "attempts", "rate"),
    [(0, 4, 0.0), (1, 4, 0.25), (3, 4, 0.75), (4, 4, 1.0), (0, 0, 0.0)],
)
def test_probe_attack_success_rate(hits, attempts, rate):
    assert ProbeResult("p", "d", attempts, hits).attack_success_rate == rate


def test_probe_as_dict_rounds_the_rate():
    assert ProbeResult("p", "d", 3, 1).as_dict() == {
        "probe": "p",
        "detector": "d",
        "attempts": 3,
        "hits": 1,
        "attack_success_rate": 0.3333,
    }


def test_overall_rate_is_hits_over_attempts_not_a_mean_of_rates(report_path):
    report = read_report(report_path)
    assert (report.hits, report.attempts) == (6, 16)
    assert report.overall_attack_success_rate == 6 / 16  # the mean of the four rates would be 0.4875


def test_by_probe_keys_every_probe(report_path):
    assert set(read_report(report_path).by_probe()) == {
        "dan.Dan_11_0",
        "encoding.InjectBase64",
        "promptinject.HijackKillHumans",
    }


# --- table ----------------------------------------------------------------------


def test_table_has_a_row_per_result_and_an_overall_row(report_path):
    lines = read_report(report_path).table().splitlines()
    assert len(lines) == 1 + 4 + 1
    assert lines[0].split() == ["probe", "detector", "attempts", "hits", "ASR"]
    assert lines[-1].split() == ["overall", "16", "6", "37.5%"]


@pytest.mark.parametrize(
    "row",
    [
        ["dan.Dan_11_0", "dan.DAN", "1", "0", "0.0%"],
        ["dan.Dan_11_0", "mitigation.MitigationBypass", "1", "1", "100.0%"],
        ["encoding.InjectBase64", "encoding.DecodeMatch", "10", "2", "20.0%"],
        ["promptinject.HijackKillHumans", "promptinject.AttackRogueString", "4", "3", "75.0%"],
    ],
)
def test_table_contains_each_probe(report_path, row):
    assert row in [line.split() for line in read_report(report_path).table().splitlines()]


# --- hits_in --------------------------------------------------------------------


def test_hits_in_returns_only_scored_hits(tmp_path):
    path = write(
        tmp_path / "r.jsonl",
        [
            START,
            attempt(
                "dan.Dan_11_0", "You are DAN", "DAN: sure", {"dan.DAN": [1.0], "mitigation.MitigationBypass": [0.0]}
            ),
            attempt("dan.Dan_11_0", "You are DAN too", "I can't", {"dan.DAN": [0.0]}),
            attempt("encoding.InjectHex", "4142", "AB", {"encoding.DecodeMatch": [0.5]}),
            attempt("encoding.InjectHex", "4344", "no idea", {"encoding.DecodeMatch": [0.49]}),
            attempt("encoding.InjectHex", "4546", "EF", {"encoding.DecodeMatch": [1.0]}, status=1),  # not scored yet
            attempt("encoding.InjectHex", "4748", "", {"encoding.DecodeMatch": [None]}),
            EVALS[0],
            COMPLETION,
        ],
    )
    assert hits_in(path) == [
        {"probe": "dan.Dan_11_0", "detector": "dan.DAN", "prompt": "You are DAN", "output": "DAN: sure"},
        {"probe": "encoding.InjectHex", "detector": "encoding.DecodeMatch", "prompt": "4142", "output": "AB"},
    ]


def test_hits_in_reports_each_detector_that_scored_a_hit(tmp_path):
    path = write(
        tmp_path / "r.jsonl", [attempt("dan.STAN", "p", "o", {"dan.STAN": [1.0], "mitigation.MitigationBypass": [1.0]})]
    )
    assert [h["detector"] for h in hits_in(path)] == ["dan.STAN", "mitigation.MitigationBypass"]


def test_hits_in_reads_the_last_turn_and_the_first_output(tmp_path):
    record = attempt("p.P", "ignored", "first", {"d.D": [1.0]})
    record["prompt"]["turns"] = [
        {"role": "system", "content": {"text": "system text"}},
        {"role": "user", "content": {"text": "last turn"}},
    ]
    record["outputs"] = [{"text": "first"}, {"text": "second"}]
    assert hits_in(write(tmp_path / "r.jsonl", [record])) == [
        {"probe": "p.P", "detector": "d.D", "prompt": "last turn", "output": "first"}
    ]


@pytest.mark.parametrize(("outputs", "expected"), [([], ""), ([None], ""), (["plain string"], "plain string")])
def test_hits_in_tolerates_odd_outputs(tmp_path, outputs, expected):
    record = attempt("p.P", "q", "unused", {"d.D": [1.0]})
    record["outputs"] = outputs
    assert hits_in(write(tmp_path / "r.jsonl", [record]))[0]["output"] == expected


def test_hits_in_without_attempts_is_empty(report_path):
    assert hits_in(report_path) == []


# --- compare and plot -----------------------------------------------------------


def report_of(*rows: tuple[str, int, int]) -> ScanReport:
    return ScanReport(tuple(ProbeResult(probe, "d", attempts, hits) for probe, attempts, hits in rows))


BEFORE = report_of(("dan.DUDE", 4, 4), ("encoding.InjectHex", 10, 5), ("promptinject.HijackLongPrompt", 4, 2))
AFTER = report_of(("dan.DUDE", 4, 0), ("encoding.InjectHex", 10, 1), ("dan.STAN", 2, 1))


def test_compare_per_probe_with_missing_probes_as_zero():
    assert compare(BEFORE, AFTER) == [
        Change("dan.DUDE", 1.0, 0.0),
        Change("dan.STAN", 0.0, 0.5),
        Change("encoding.InjectHex", 0.5, 0.1),
        Change("promptinject.HijackLongPrompt", 0.5, 0.0),
    ]


@pytest.mark.parametrize(("before", "after", "delta"), [(1.0, 0.0, -1.0), (0.25, 0.75, 0.5), (0.5, 0.5, 0.0)])
def test_change_delta_is_after_minus_before(before, after, delta):
    assert Change("p", before, after).delta == delta


def test_compare_of_reports_read_from_disk(report_path):
    changes = compare(read_report(report_path), report_of())
    assert [(c.probe, c.after) for c in changes] == [
        ("dan.Dan_11_0", 0.0),
        ("encoding.InjectBase64", 0.0),
        ("promptinject.HijackKillHumans", 0.0),
    ]


def test_plot_comparison_writes_a_png(tmp_path):
    import matplotlib.pyplot as plt

    path = tmp_path / "c.png"
    fig = plot_comparison(BEFORE, AFTER, path=path, labels=("none", "lab01"))
    try:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_yticklabels()] == [c.probe for c in compare(BEFORE, AFTER)]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["none", "lab01"]
        assert ax.get_title() == "garak: overall 61% -> 12%"  # 11/18 and 2/16
        before, after = ax.containers
        # On screen (the y axis is inverted) each probe's "before" bar sits above its "after" bar,
        # in the legend's order.
        assert all(b.get_y() < a.get_y() for b, a in zip(before, after, strict=True))
        assert ax.yaxis_inverted()
    finally:
        plt.close(fig)


def test_probe_options_become_garaks_nested_plugin_config():
    from doubleedge.scan import ScanSpec

    spec = ScanSpec(
        lab="x", probes=("a.B",), probe_options={"latentinjection.LatentJailbreak": {"primary_detector": "d.E"}}
    )
    assert spec.probes_config() == {"latentinjection": {"LatentJailbreak": {"primary_detector": "d.E"}}}
    assert spec.spec == "probes.a.B"


def test_the_comparison_legend_covers_no_bar_and_small_rates_keep_a_decimal(tmp_path):
    """The lab's before/after chart: a long last bar stays visible, and 1.4% is not shown as 1%."""
    import matplotlib.pyplot as plt

    before = report_of(("dan.DUDE", 10, 10), ("encoding.InjectHex", 10, 10), ("promptinject.HijackLongPrompt", 50, 50))
    after = report_of(("dan.DUDE", 10, 0), ("encoding.InjectHex", 10, 0), ("promptinject.HijackLongPrompt", 70, 1))
    fig = plot_comparison(before, after, path=tmp_path / "c.png")
    try:
        ax = fig.axes[0]
        assert ax.get_title() == "garak: overall 100% -> 1.1%"  # 70/70 and 1/90
        renderer = fig.canvas.get_renderer()
        legend = ax.get_legend().get_window_extent(renderer)
        bars = [patch.get_window_extent(renderer) for patch in ax.patches]
        assert bars and not any(legend.overlaps(bar) for bar in bars)
    finally:
        plt.close(fig)


def test_a_preview_reuses_only_a_scan_of_the_labs_probes():
    spec = ScanSpec(lab="99", probes=("dan.STAN", "encoding.InjectHex"))
    scan = ScanReport((ProbeResult("dan.STAN", "dan.STAN", 4, 1), ProbeResult("encoding.InjectHex", "encoding.DecodeMatch", 4, 0),
                       ProbeResult("encoding.InjectHex", "encoding.DecodeApprox", 4, 0)))  # fmt: skip
    assert reused_scan(scan, spec) is scan
    with pytest.raises(ValueError, match="not Lab 99's scan .*dan.DUDE"):
        reused_scan(ScanReport((*scan.results, ProbeResult("dan.DUDE", "dan.DUDE", 1, 1))), spec)
    with pytest.raises(ValueError, match="not Lab 99's scan .*encoding.InjectHex"):
        reused_scan(ScanReport(scan.results[:1]), spec)
    with pytest.raises(ValueError, match="ScanReport your scan cell made .*got str"):
        reused_scan("scans/hardened", spec)
