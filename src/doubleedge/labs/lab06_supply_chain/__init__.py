"""Lab 06: supply chain, the model files you download. Its target is files, not a chat."""

from doubleedge.labs.base import Lab, NoChatTarget

LAB = Lab(
    number="06",
    slug="06-supply-chain",
    title="Supply chain: model files you download",
    package=__name__,
    target=NoChatTarget(
        "Lab 06's target is model files, not a chat: the notebook scans them with picklescan "
        "(doubleedge.supplychain.scan_path)"
    ),
    checks="doubleedge.grading.lab06",
    solution="doubleedge.defenses.lab06",
    runner_helpers={"outcome_of": "doubleedge.supplychain:outcome_of"},  # the learner's loader on a file
    thresholds=lambda: ["no held-out poisoned file's code runs", "no held-out tampered GGUF chat template is trusted"],
    hidden=(
        "weights_only=True)  # an allowlist",
        "check_refuses",
        "torch.load(model_file, weights_only=False)",
        "check_read_marker",
        'SMOLLM2_PUBLISHED["chat_template_sha256"]',
        "check_template_is_trusted",
        '"remote-code", "tampered"]',
        "auto_map",
    ),
)
