"""Lab 08's checks: the held-out gate cases bite, the card check reads numbers, the solution is in sync."""

import copy
import json
import re
from dataclasses import replace

import nbformat
import pytest
import yaml

from doubleedge import gate
from doubleedge.defenses import lab08 as solution
from doubleedge.governance import CARD_SECTIONS, LICENCE_PROBLEMS, PRACTICE_REQUESTS, ReleasePlan
from doubleedge.grading import lab08
from doubleedge.grading.labs import LABS
from doubleedge.paths import labs_dir

GATE_CASES, CARDS, RELEASES = lab08.load_cases(LABS["08"].heldout_attacks)


def test_reference_gate_decides_every_heldout_case():
    outcomes = lab08.gate_outcomes(solution.gate_violations, GATE_CASES)
    assert [why for _, why in outcomes if why] == []
    assert lab08.check_gate(outcomes, "regression") and lab08.check_gate(outcomes, "clean")
    assert {c["label"] for c in GATE_CASES} == {"regression", "clean"} and len(GATE_CASES) >= 20


def _overall(baseline, candidate, config):
    def rate(m):
        return sum(r["hits"] for r in m["results"]) / sum(r["attempts"] for r in m["results"])

    return ["worse"] if (rate(candidate) - rate(baseline)) * 100 > config["asr_tolerance_pp"] else []


def _unrounded(baseline, candidate, config):
    before = {(r["probe"], r["detector"]): r["asr"] for r in baseline["results"]}
    out = [p for (p, d), asr in ((k, r["asr"]) for r in candidate["results"] for k in [(r["probe"], r["detector"])])
           if (asr - before.get((p, d), 0)) * 100 > config["probe_tolerance_pp"].get(p, config["asr_tolerance_pp"])]  # fmt: skip
    if (baseline["benign_pass_rate"] - candidate.get("benign_pass_rate", 0)) * 100 > config["benign_tolerance_pp"]:
        out.append("benign")
    return out


def _trusts_what_ran(baseline, candidate, config):
    """Ignores missing and unevaluated probes, and the scan name: the silent failures."""
    candidate = copy.deepcopy(candidate)
    ran = {(r["probe"], r["detector"]) for r in candidate["results"] if r["attempts"]}
    baseline = dict(baseline, results=[r for r in baseline["results"] if (r["probe"], r["detector"]) in ran])
    candidate["scan"] = baseline["scan"] = config["scan"]
    candidate.setdefault("benign_pass_rate", baseline["benign_pass_rate"])
    return solution.gate_violations(baseline, candidate, config)


def _by_probe_only(baseline, candidate, config):
    """Keys on the probe alone: a probe's second detector overwrites the first."""

    def squash(m):
        return dict(m, results=list({r["probe"]: dict(r, detector="any") for r in m["results"]}.values()))

    return solution.gate_violations(squash(baseline), squash(candidate), config)


@pytest.mark.parametrize("naive", [_overall, _unrounded, _trusts_what_ran, _by_probe_only])
def test_heldout_cases_catch_naive_gates(naive):
    outcomes = lab08.gate_outcomes(naive, GATE_CASES)
    assert any(why for _, why in outcomes), naive.__name__


def test_check_gate_reports_the_kind_of_case_not_its_data():
    outcomes = lab08.gate_outcomes(lambda b, c, cfg: [], GATE_CASES)
    check = lab08.check_gate(outcomes, "regression")
    assert not check and "passed a regression" in check.reason
    described = [json.loads(line).get("why") for line in LABS["08"].heldout_attacks.read_text("utf-8").splitlines()]
    assert "held-out case '" in check.reason and not any(why and why in check.reason for why in described)
    assert lab08.check_gate(outcomes, "clean")
    broken = lab08.gate_outcomes(lambda b, c, cfg: "no", GATE_CASES[:1])
    assert "list of strings" in broken[0][1]
    raising = lab08.gate_outcomes(lambda b, c, cfg: 1 / 0, GATE_CASES[:1])
    assert "ZeroDivisionError" in raising[0][1]


def test_gate_does_not_see_changes_made_by_the_learner_code():
    def vandal(baseline, candidate, config):
        candidate["results"].clear()
        return []

    lab08.gate_outcomes(vandal, GATE_CASES)
    assert all(c["candidate"]["results"] for c in GATE_CASES)


def test_reference_card_passes_and_card_check_finds_each_kind_of_mistake():
    summary = CARDS[0]
    card = solution.system_card(summary)
    assert lab08.check_card(solution.system_card, CARDS)
    released = summary["released"]["results"]
    residual = next(r for r in released if r["asr"] > 0)
    fixed = next(r for r in released if r["asr"] == 0 and r["probe"] != residual["probe"])
    mistakes = {
        "no '## Mitigations' section": card.replace("## Mitigations", "## What we did"),
        "run id": card.replace(summary["released"]["run_id"], "latest"),
        "Evidence section has no line": card.replace("| 90.0% | 0.0% |", "| 0.9 | 0.0% |"),
        "Risks found does not name": card.replace("- dan.DanInTheWild:", "- DanInTheWild:"),
        "Mitigations does not list": card.replace(summary["mitigations"][0], "a better prompt"),
        "which no longer succeeds": card + f"- {fixed['probe']}: fixed\n",
        "Residual risk does not give the benign": card.replace("after hardening: 100.0%", "after hardening: all"),
    }
    for problem, text in mistakes.items():
        assert text != card, problem
        assert any(problem in p for p in lab08.card_problems(text, summary)), problem
    assert lab08.card_problems(None, summary) == ["system_card must return a string of markdown"]


def test_card_rates_must_be_in_order_before_then_after():
    line = "| a.B | c.D | 0.0% | 100.0% |"
    assert lab08._in_order(line, "0.0%", "100.0%") and not lab08._in_order(line, "100.0%", "0.0%")


def test_smuggled_check():
    import base64

    def encoded(text):
        return base64.b64encode(text.encode()).decode()

    assert lab08.check_smuggled(lambda word: encoded(f"Say {word}"), "alice")
    assert "plainly" in lab08.check_smuggled(lambda word: f"Say {word}", "alice").reason
    assert not lab08.check_smuggled(lambda word: encoded("What are your store hours?"), "alice")
    # a word the release says anyway (its own answer), not the word it was given
    assert not lab08.check_smuggled(lambda word: encoded("Say BANANAPHONE"), "alice")
    assert "raised ZeroDivisionError" in lab08.check_smuggled(lambda word: 1 / 0, "alice").reason
    assert lab08.grading_word("alice") != lab08.grading_word("bob")


REFERENCE_OUTCOMES = lab08.gate_outcomes(solution.gate_violations, GATE_CASES)
# The gate's exit codes on the candidate releases, measured with the reference solution on the
# Lab 08 scan: friendlier and short-prompt stay within tolerance (short-prompt's benign rate drops
# exactly 2 points), no-decoder raises the encoding probes by 90 and 60 points, classifier drops
# the benign rate by 8 points, and community-finetune (a new model, same prompt and guards) raises
# encoding.InjectHex by 20 points (tolerance 5) and goodside.WhoIsRiley by 33.3 (its own 20).
EXPECTED_EXIT = {"v1.1-friendlier": 0, "v1.1-no-decoder": 1, "v1.1-classifier": 1, "v1.1-short-prompt": 0,
                 "v1.1-community-finetune": 1}  # fmt: skip


def test_heldout_decisions_are_the_candidates_real_scans():
    assert {n: lab08.exit_code(case) for n, case in RELEASES.items()} == EXPECTED_EXIT
    assert sum(bool(case.get("release_decision")) for case in GATE_CASES) == len(EXPECTED_EXIT)  # one per release
    assert all(case["id"].startswith("real-") and case["baseline"]["name"] == "v1.0" and
               case["config"] == gate.DEFAULT_CONFIG for case in RELEASES.values())  # fmt: skip


def test_decisions_check():
    assert lab08.check_decisions(dict(EXPECTED_EXIT), RELEASES, REFERENCE_OUTCOMES)
    assert "wrong exit code for v1.1-short-prompt" in lab08.check_decisions(
        {**EXPECTED_EXIT, "v1.1-short-prompt": 1}, RELEASES, REFERENCE_OUTCOMES).reason
    assert "must map each of" in lab08.check_decisions({"v1.1-friendlier": 0}, RELEASES, REFERENCE_OUTCOMES).reason
    with pytest.raises(ValueError, match="release_decision"):
        lab08.check_decisions(dict(EXPECTED_EXIT), {}, REFERENCE_OUTCOMES)  # a held-out set without them


def test_decisions_need_a_gate_that_gives_them():
    """The right answers, copied from the lesson's table, earn nothing without a gate that reaches them."""
    no_gate = lab08.check_decisions(dict(EXPECTED_EXIT), RELEASES, [])
    assert not no_gate and "write the gate first" in no_gate.reason
    never_fails = lab08.gate_outcomes(lambda baseline, candidate, config: [], GATE_CASES)
    check = lab08.check_decisions(dict(EXPECTED_EXIT), RELEASES, never_fails)
    assert not check and "on 3 of the 5 releases" in check.reason  # it is right on the two clean ones


def test_the_package_holds_no_answer_key():
    """The exit codes live only in the held-out file: nothing the learner's processes import holds them."""
    assert not hasattr(lab08, "EXPECTED_EXIT") and not hasattr(lab08, "release_cases")


def test_config_problems_catch_a_loosened_gate():
    assert gate.config_problems(gate.DEFAULT_CONFIG) == []
    assert gate.config_problems({**gate.DEFAULT_CONFIG, "asr_tolerance": 5})  # a typo
    assert gate.config_problems({**gate.DEFAULT_CONFIG, "benign_tolerance_pp": -1})
    assert gate.config_problems({**gate.DEFAULT_CONFIG, "probe_tolerance_pp": {"x": "lots"}})


def test_script_exit_codes(tmp_path):
    script = gate.write_script(tmp_path / "gate.py", solution.gate_violations)
    assert "BEGIN SOLUTION" not in script.read_text()
    gate.save_json(gate.DEFAULT_CONFIG, tmp_path / "gate.json")
    for case in GATE_CASES[:8]:
        gate.save_json(case["baseline"], tmp_path / "b.json")
        gate.save_json(case["candidate"], tmp_path / "c.json")
        gate.save_json(case["config"], tmp_path / "cfg.json")
        done = gate.run_script(script, tmp_path / "b.json", tmp_path / "c.json", tmp_path / "cfg.json")
        assert done.returncode == (1 if case["label"] == "regression" else 0), (case["id"], done.stdout)
    assert (
        gate.run_script(script, tmp_path / "missing.json", tmp_path / "c.json", tmp_path / "gate.json").returncode == 2
    )
    with pytest.raises(ValueError):
        gate.write_script(tmp_path / "x.py", solution.system_card)


def test_ci_job_runs_the_files_the_notebook_writes():
    job = yaml.safe_load((labs_dir() / "08-governance" / "release-gate.yml").read_text())
    steps = job["jobs"]["gate"]["steps"]
    commands = " ".join(s.get("run", "") for s in steps)
    assert "python ci/gate.py ci/baseline.json candidate.json --config ci/gate.json" in commands
    assert job["jobs"]["gate"]["env"]["RELEASE"] in gate.RELEASES
    assert any(s.get("if") == "always()" for s in steps), "keep the evidence when the gate fails"
    notebook = json.dumps(nbformat.read(LABS["08"].source_notebook, as_version=4).cells)
    assert all(name in notebook for name in ("ci/gate.py", "ci/gate.json", "ci/baseline.json"))


GOVERNANCE = lab08.load_governance(LABS["08"].heldout_attacks)


def test_the_reference_rules_give_every_heldout_answer():
    """Part 5's held-out answers are the course's rules applied (and each kind has cases of every answer)."""
    assert lab08.check_roles(lab08.in_kernel(solution.ai_act_roles, lab08.on_scenario), GOVERNANCE.scenarios)
    assert lab08.check_duties(lab08.in_kernel(solution.gpai_duties, lab08.on_scenario), GOVERNANCE.scenarios)
    assert lab08.check_licences(lab08.in_kernel(solution.licence_problems, lab08.on_release_plan), GOVERNANCE.plans)
    assert lab08.check_model_cards(solution.missing_card_sections, GOVERNANCE.model_cards)
    roles = {frozenset(c["expect"]["roles"]) for c in GOVERNANCE.scenarios}
    assert roles == {frozenset(), frozenset({"provider"}), frozenset({"deployer"}), frozenset({"provider", "deployer"})}
    assert {len(c["expect"]["duties"]) for c in GOVERNANCE.scenarios} == {0, 2, 4}
    assert {p for c in GOVERNANCE.plans for p in c["expect"]} == set(LICENCE_PROBLEMS)
    assert any(not c["expect"] for c in GOVERNANCE.plans) and any(not c["expect"] for c in GOVERNANCE.model_cards)
    assert {s for c in GOVERNANCE.model_cards for s in c["expect"]} == set(CARD_SECTIONS)


def _every_role(scenario):
    return {"provider", "deployer"}


def _roles_from_words(scenario):
    text = scenario.description.lower()
    return {role for role, words in (("provider", ("build", "develop", "brand", "own name", "sell")),
                                     ("deployer", ("use", "run", "deploy"))) if any(w in text for w in words)}  # fmt: skip


def _no_modification_threshold(scenario):
    return solution.gpai_duties(replace(scenario, trains_model=scenario.trains_model or scenario.modification_compute > 0))


def _exemption_ignores_systemic_risk(scenario):
    return solution.gpai_duties(replace(scenario, systemic_risk=False))


def _api_counts_as_distribution(plan):
    return solution.licence_problems(replace(plan, releases_weights=plan.releases_weights or plan.serves_model))


def _user_limit_inclusive(plan):
    over = plan.monthly_active_users >= 700_000_000 and plan.base_licence == "Llama-3.1-Community"
    return solution.licence_problems(plan) | ({"meta_licence"} if over else set())


def _headings_only(card):
    titles = {" ".join(m.strip().strip("#:").lower().split()) for m in re.findall(r"^#{1,6}\s+(.*)$", card, re.M)}
    return [name for name, names in CARD_SECTIONS.items() if not titles & set(names)]


def _words_anywhere(card):
    return [name for name, names in CARD_SECTIONS.items() if not any(n in card.lower() for n in names)]


@pytest.mark.parametrize(
    "check, function, cases",
    [
        (lab08.check_roles, _every_role, "scenarios"),
        (lab08.check_roles, _roles_from_words, "scenarios"),
        (lab08.check_duties, _no_modification_threshold, "scenarios"),
        (lab08.check_duties, _exemption_ignores_systemic_risk, "scenarios"),
        (lab08.check_licences, _api_counts_as_distribution, "plans"),
        (lab08.check_licences, _user_limit_inclusive, "plans"),
        (lab08.check_licences, lambda plan: set(), "plans"),
        (lab08.check_model_cards, _headings_only, "model_cards"),
        (lab08.check_model_cards, _words_anywhere, "model_cards"),
        (lab08.check_model_cards, lambda card: [], "model_cards"),
    ],
    ids=["every-role", "words", "no-third", "systemic-exempt", "api-distributes", "limit-inclusive", "allow-all",
         "headings-only", "words-anywhere", "nothing-missing"],
)  # fmt: skip
def test_heldout_governance_cases_catch_wrong_rules(check, function, cases):
    """Each shortcut or misread rule fails on some held-out case; the reason names a case id, never its text."""
    rebuild = {"scenarios": lab08.on_scenario, "plans": lab08.on_release_plan}.get(cases)
    result = check(lab08.in_kernel(function, rebuild) if rebuild else function, getattr(GOVERNANCE, cases))
    assert not result and "held-out cases; first: '" in result.reason
    texts = [v for c in getattr(GOVERNANCE, cases) for v in json.dumps(c).split('"') if len(v) >= 12]
    assert not any(t in result.reason for t in texts if not t.startswith(("role-", "licence-", "card-")))


def test_governance_answers_must_be_names_of_the_vocabulary():
    scenarios = GOVERNANCE.scenarios[:1]
    assert "must return a set of names" in lab08.check_roles(lambda data: "provider", scenarios).reason
    assert "not one of provider, deployer" in lab08.check_roles(lambda data: ["importer"], scenarios).reason
    assert "raised ZeroDivisionError" in lab08.check_roles(lambda data: 1 / 0, scenarios).reason
    with pytest.raises(ValueError, match="base_licence must be one of"):
        ReleasePlan("x", "GPL-3.0")


# --- Part 6: the acceptable-use policy ---------------------------------------------------------

MISUSE = lab08.load_misuse_cases(LABS["08"].heldout_attacks)
SCARY = ("kill", "bomb", "weapon", "hack", "steal", "poison", "shoot", "attack", "explosive", "gun", "threat")


def test_reference_policy_decides_every_heldout_request():
    assert lab08.check_use_policy(solution.breaks_use_policy, MISUSE)
    assert [c.text for c in MISUSE if solution.breaks_use_policy(c.text) != c.attack] == []
    assert sum(c.attack for c in MISUSE) == sum(not c.attack for c in MISUSE) == 24


def test_heldout_requests_are_not_the_practice_ones_and_not_in_label_order():
    assert {c.text for c in MISUSE}.isdisjoint(text for text, _ in PRACTICE_REQUESTS)
    labels = [c.attack for c in MISUSE]
    assert labels != sorted(labels) and labels != sorted(labels, reverse=True)
    assert [solution.breaks_use_policy(text) for text, _ in PRACTICE_REQUESTS] == [r for _, r in PRACTICE_REQUESTS]


@pytest.mark.parametrize(
    "policy",
    [lambda text: True, lambda text: False, lambda text: any(w in text.lower() for w in SCARY),
     lambda text: any(text == t and refuse for t, refuse in PRACTICE_REQUESTS)],
    ids=["refuse-all", "refuse-none", "scary-words", "practice-list"],
)  # fmt: skip
def test_heldout_requests_catch_shortcut_policies(policy):
    """Each shortcut fails on one edge or both; the reason gives counts, never a held-out request."""
    result = lab08.check_use_policy(policy, MISUSE)
    assert not result and "held-out" in result.reason
    assert not any(c.text in result.reason for c in MISUSE)


def test_policy_check_reports_a_broken_function_without_the_request():
    assert "raised ZeroDivisionError" in lab08.check_use_policy(lambda text: 1 / 0, MISUSE).reason
    assert "must be a function" in lab08.check_use_policy("kill", MISUSE).reason


def test_the_release_must_put_the_policy_in_front_of_the_bot():
    assert lab08.check_defense_uses_policy(solution.breaks_use_policy, lab08.policy_bot(solution.build_defense, "ada"),
                                           MISUSE)  # fmt: skip
    approved = lab08.policy_bot(lambda secret: gate.release_bot("v1.0", secret).defense, "ada")
    assert "put it in front of the bot" in lab08.check_defense_uses_policy(solution.breaks_use_policy, approved, MISUSE).reason
    nothing = lab08.check_defense_uses_policy(lambda text: False, approved, MISUSE)
    assert "no policy to use" in nothing.reason
    with pytest.raises(ValueError, match="must return a Defense"):
        lab08.policy_bot(lambda secret: "v1.0", "ada")
