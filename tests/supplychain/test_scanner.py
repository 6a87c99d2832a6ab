"""picklescan, run for real on the lab's files: what it flags and what it misses."""

from doubleedge.supplychain import CaseSpec, build_case, build_community_model, scan_path


def test_scan_flags_the_poisoned_pickle_only(tmp_path):
    report = scan_path(build_community_model(tmp_path).root)
    assert report.dangerous_files == ["pickle/pytorch_model.bin"]
    assert {f.global_name for f in report.findings if f.safety == "dangerous"} == {"__builtin__.exec"}
    assert report.scanned == ("pickle/pytorch_model.bin",), "safetensors, JSON and Python files are not pickles"
    assert "dangerous" in report.table()


def test_scan_calls_a_blocklist_gap_only_suspicious(tmp_path):
    case = build_case(CaseSpec("z", "refuse", format="torch-zip", payload="zipfile"), tmp_path)
    report = scan_path(case.path)
    assert report.dangerous_files == []
    assert report.suspicious_files == ["pytorch_model.bin"]


def test_scan_reads_a_pickle_disguised_as_safetensors(tmp_path):
    case = build_case(CaseSpec("d", "refuse", format="fake-safetensors", payload="exec"), tmp_path)
    assert scan_path(case.path).dangerous_files == ["model.safetensors"]


def test_scan_of_a_clean_folder_is_empty(tmp_path):
    case = build_case(CaseSpec("c", "load", layout="folder"), tmp_path)
    report = scan_path(case.path)
    assert report.findings == () and report.table() == "no findings"
