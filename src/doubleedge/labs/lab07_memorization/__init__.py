"""Lab 07: training data leaks. Its target is the model the notebook trains, not a chat;
its measures are the figures' own set ("memorization", doubleedge.figures)."""

from doubleedge.labs.base import Lab, NoChatTarget


def thresholds() -> list[str]:
    from doubleedge.grading import lab07

    return [
        f"below {lab07.EXPOSURE_THRESHOLD:g} bits",
        f"inserted {lab07.EXTRACT_MIN_COUNT} times",
        f"at most {lab07.PERPLEXITY_RATIO - 1:.0%} above",
    ]


LAB = Lab(
    number="07",
    slug="07-memorization",
    title="Training data leaks: memorization",
    package=__name__,
    target=NoChatTarget(
        "Lab 07's target is the model you train in the notebook, not a chat: the notebook scans it with garak "
        "(doubleedge.memorization.garak_scan.scan_model)"
    ),
    checks="doubleedge.grading.lab07",
    solution="doubleedge.defenses.lab07",
    runner_helpers={"run_extraction": "doubleedge.grading.lab07:run_extraction"},  # extract on the trained model
    thresholds=thresholds,
    hidden=(
        "SECRET_PATTERNS",
        "check_extraction",
        "exposure_check",
        "math.log2(space_size) - math.log2(rank)",
        "max(logprobs, key=logprobs.get)",
    ),
)
