"""Supply chain (Lab 06): community model files, poisoned or clean; scanning them; loading safely."""

from doubleedge.supplychain.build import (
    COMMUNITY_VARIANTS,
    MARKER_TEXT,
    PAYLOADS,
    BuiltCase,
    CaseSpec,
    CommunityModel,
    build_case,
    build_cases,
    build_community_model,
    fingerprint,
    load_specs,
    sha256_file,
    weights,
)
from doubleedge.supplychain.policy import UnsafeModelError, outcome_of
from doubleedge.supplychain.scanner import Finding, ScanSummary, scan_path

__all__ = [
    "COMMUNITY_VARIANTS",
    "MARKER_TEXT",
    "PAYLOADS",
    "BuiltCase",
    "CaseSpec",
    "CommunityModel",
    "Finding",
    "ScanSummary",
    "UnsafeModelError",
    "build_case",
    "build_cases",
    "build_community_model",
    "fingerprint",
    "load_specs",
    "outcome_of",
    "scan_path",
    "sha256_file",
    "weights",
]
