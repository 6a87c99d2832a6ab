"""Lab 11: the other edge. What open weights give you: your data stays home, the model file can be
read, and the cost is yours to measure."""

from doubleedge.labs.base import Lab, NoChatTarget


def thresholds() -> list[str]:
    from doubleedge.grading import lab11

    return ["no held-out customer's details or staff code", f"at least {lab11.ORDINARY_THRESHOLD:.0%}"]


LAB = Lab(
    number="11",
    slug="11-other-edge",
    title="The other edge: what open weights give you",
    package=__name__,
    target=NoChatTarget(
        "Lab 11's targets are a logging model provider and model files: the notebook starts the provider "
        "itself (doubleedge.hosted.HostedProvider)"
    ),
    checks="doubleedge.grading.lab11",
    ordinary_allowed="none",
    thresholds=thresholds,
    hidden=(
        "CODE_LINE = re.compile",
        "[customer]",
        "kind == gguf.TokenType.CONTROL",
        'f"{arch}.context_length"',
        "/ (3.6 * tokens_per_second)",
        "math.ceil(",
    ),
)
