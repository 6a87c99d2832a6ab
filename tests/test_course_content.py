"""The course pages agree with each other and with the lab kit.

**The lesson template** (for contributors). Every lesson page, ``course/NN-slug/index.md`` and
``course/09-capstone/index.md``, has these parts, in this order, with these exact names:

1. ``# NN Title`` on the first line;
2. ``!!! info "Time"`` with ``- Teaching: N minutes`` and ``- Lab: N minutes`` (a range such as
   ``60–75`` is fine); the syllabus shows these numbers;
3. ``!!! question "Questions"``, then ``!!! abstract "Objectives"``;
4. the body: any ``##`` sections, including ``## Where this fits`` with the OWASP 2025 IDs
   written as ``LLM01:2025`` and any MITRE ATLAS IDs as ``AML.T0051`` (the syllabus lists them);
5. ``## Warm-up exercises`` (ungraded), each solution in a collapsible
   ``??? success "Solution"`` block;
6. ``!!! success "Key points"``;
7. ``## Further reading``, last, a list of links.

The template follows the Carpentries' episode skeleton (time, questions, objectives, body,
exercises, key points) with Material's admonitions. ``test_lesson_follows_the_template`` holds
every lesson to it, including ones added later.

The other tests check the syllabus (course/syllabus.md) against the lessons, garak's own probe
tags and the labs' scans, and the glossary against the abbreviations and the lessons' wording.
"""

from __future__ import annotations

import importlib
import json
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from doubleedge.labs import LABS
from doubleedge.paths import REPO_ROOT

COURSE = REPO_ROOT / "course"
SYLLABUS = COURSE / "syllabus.md"
GLOSSARY = COURSE / "learners" / "glossary.md"
GRADING_PAGE = COURSE / "learners" / "grading.md"

# Lab 07 scans a trained model, not the bot, so its garak probe is not in LAB_SCANS.
LAB_SCANS = {number: lab.scan for number, lab in LABS.items() if lab.scan}  # the labs' own garak scans
COURSE_ONLY_SCANS = {"07": ("doubleedge_canaries.Canaries",), "12": ("doubleedge_conversations.MultiTurn",)}
CAPSTONE_LAB = "09"  # the capstone's lab number (doubleedge/labs/lab09_capstone)

# The official names, from genai.owasp.org: the 2025 list, and the 2026 list as published on
# 4 August 2026 (GenAI-Security-Project/GenAI-LLM-Top10, 2026/README.md).
OWASP_2025 = {
    "LLM01": "Prompt Injection",
    "LLM02": "Sensitive Information Disclosure",
    "LLM03": "Supply Chain",
    "LLM04": "Data and Model Poisoning",
    "LLM05": "Improper Output Handling",
    "LLM06": "Excessive Agency",
    "LLM07": "System Prompt Leakage",
    "LLM08": "Vector and Embedding Weaknesses",
    "LLM09": "Misinformation",
    "LLM10": "Unbounded Consumption",
}
OWASP_2026 = {
    "LLM01": "Prompt Injection",
    "LLM02": "Sensitive Information Disclosure",
    "LLM03": "Excessive Agency",
    "LLM04": "Supply Chain",
    "LLM05": "Data and Model Poisoning",
    "LLM06": "Unbounded Consumption",
    "LLM07": "Misinformation",
    "LLM08": "Hidden Context Exposure",
    "LLM09": "Vector and Embedding Weaknesses",
    "LLM10": "Improper Output Handling",
}
# Technique names in MITRE ATLAS release 5.6.1 (mitre-atlas/atlas-data, data/techniques.yaml).
ATLAS = {
    "AML.T0010": "AI Supply Chain Compromise",
    "AML.T0011": "User Execution",
    "AML.T0024": "Exfiltration via AI Inference API",
    "AML.T0051": "LLM Prompt Injection",
    "AML.T0053": "AI Agent Tool Invocation",
    "AML.T0054": "LLM Jailbreak",
    "AML.T0056": "Extract LLM System Prompt",
    "AML.T0057": "LLM Data Leakage",
    "AML.T0077": "LLM Response Rendering",
}

LLM_ID = re.compile(r"\bLLM\d\d\b")
ATLAS_ID = re.compile(r"\bAML\.T\d{4}(?:\.\d{3})?\b")
CODE = re.compile(r"`([^`]+)`")


# --- reading pages --------------------------------------------------------------------


def lesson_pages() -> list[Path]:
    return sorted(COURSE.glob("[0-9][0-9]-*/index.md"))  # the capstone is 09-capstone


def outside_code(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif fence is None:
            lines.append((number, line))
    return lines


def markers(text: str) -> list[tuple[str, str]]:
    """The page's skeleton: ``##`` headings and top-level admonitions, in order."""
    found = []
    for _, line in outside_code(text):
        if heading := re.match(r"## (.+?)\s*$", line):
            found.append(("h2", heading.group(1)))
        elif box := re.match(r'!!! (\w+)(?: "(.*)")?\s*$', line):
            found.append((box.group(1), box.group(2) or box.group(1)))
    return found


def section(text: str, start: str) -> str:
    """The text from the line starting with ``start`` up to the next ``##`` heading or top-level box."""
    out, inside = [], False
    for _, line in outside_code(text):
        if line.startswith(start):
            inside = True
        elif inside and re.match(r"(## |!!! )", line):
            break
        if inside:
            out.append(line)
    return "\n".join(out)


def table(text: str, after: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table after the heading ``after``."""
    lines = text.split(after, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = lines[start:end]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows[2:]]


# --- the lesson template ----------------------------------------------------------------

OPENING = [("info", "Time"), ("question", "Questions"), ("abstract", "Objectives")]
EXERCISES, KEY_POINTS, FURTHER = ("h2", "Warm-up exercises"), ("success", "Key points"), ("h2", "Further reading")


def template_problems(text: str) -> list[str]:
    """What keeps a lesson page from following the template (empty: it follows it)."""
    problems = []
    if not re.match(r"# \S.*", text):
        problems.append("the first line is not the '# NN Title' heading")
    found = markers(text)
    if found[:3] != OPENING:
        problems.append(f"the page must open with the Time, Questions and Objectives boxes, not {found[:3]}")
    for part in (EXERCISES, KEY_POINTS, FURTHER):
        if found.count(part) != 1:
            problems.append(f"needs exactly one {part[1]!r} ({found.count(part)} found)")
    if problems:
        return problems
    exercises, key_points, further = (found.index(p) for p in (EXERCISES, KEY_POINTS, FURTHER))
    if not any(kind == "h2" for kind, _ in found[3:exercises]):
        problems.append("no body sections between the Objectives and the exercises")
    if not exercises < key_points < further:
        problems.append("the order must be: exercises, key points, further reading")
    if any(kind == "h2" for kind, _ in found[exercises + 1 : key_points]) or further != len(found) - 1:
        problems.append("nothing but the key points may sit between the exercises and further reading, the last part")
    time = section(text, '!!! info "Time"')
    if not re.search(r"- Teaching: \d+ minutes", time) or not re.search(r"- Lab: [\d–]+ minutes", time):
        problems.append("the Time box needs '- Teaching: N minutes' and '- Lab: N minutes'")
    if '??? success "Solution"' not in text.split("## Warm-up exercises", 1)[-1].split('!!! success "Key points"')[0]:
        problems.append('every exercise needs a collapsible ??? success "Solution"')
    if not re.search(r"^- .*\]\(https?://", section(text, "## Further reading"), flags=re.M):
        problems.append("Further reading needs a list of links")
    return problems


@pytest.mark.parametrize("page", lesson_pages(), ids=lambda p: p.parent.name)
def test_lesson_follows_the_template(page):
    assert template_problems(page.read_text("utf-8")) == []


GOOD_LESSON = """# 99 Example

!!! info "Time"

    - Teaching: 10 minutes
    - Lab: 20–30 minutes

!!! question "Questions"

    - Why?

!!! abstract "Objectives"

    - learn

## Body

```markdown
## Not a heading: inside code
```

## Warm-up exercises

??? success "Solution"

    Yes.

!!! success "Key points"

    - one

## Further reading

- A. [Link](https://example.org/)
"""


@pytest.mark.parametrize(
    "change, problem",
    [
        (("## Further reading\n\n- A. [Link](https://example.org/)\n", ""), "needs exactly one 'Further reading'"),
        (('!!! info "Time"', '!!! info "Duration"'), "must open with the Time, Questions and Objectives"),
        (("## Warm-up exercises", "## Exercises"), "needs exactly one 'Warm-up exercises'"),
        (("- Teaching: 10 minutes", "- Teaching: a while"), "the Time box needs"),
        (('??? success "Solution"', '??? note "Answer"'), "collapsible"),
        (("## Body\n", ""), "no body sections"),
        (("- A. [Link](https://example.org/)", "- A book."), "a list of links"),
        (("\n## Further reading", "\n## Further reading\n\n## Appendix\n"), "the last part"),
    ],
)
def test_the_template_check_catches_each_deviation(change, problem):
    assert template_problems(GOOD_LESSON) == []
    broken = GOOD_LESSON.replace(*change)
    assert broken != GOOD_LESSON
    assert any(problem in p for p in template_problems(broken)), template_problems(broken)


def test_key_points_before_exercises_is_out_of_order():
    head, tail = GOOD_LESSON.split("## Warm-up exercises")
    exercises, rest = tail.split('!!! success "Key points"')
    key_points, further = rest.split("## Further reading")
    swapped = head + '!!! success "Key points"' + key_points + "## Warm-up exercises" + exercises
    swapped += "## Further reading" + further
    assert "the order must be" in " ".join(template_problems(swapped))


# --- the syllabus -------------------------------------------------------------------------


def nav_pages() -> list[str]:
    return re.findall(r'"([^"]+\.md)"', json.dumps(yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())["nav"]))


class Row:
    """One module of the course map."""

    def __init__(self, cells: list[str]):
        self.module, y2025, y2026, families, self.time, self.prerequisites = cells
        link = re.match(r"\[(.+?)\]\((.+?)\)", self.module)
        self.page = link.group(2) if link else None
        self.label = "Capstone" if "Capstone" in self.module[:10] else self.module[1:3] if link else self.module[:2]
        self.lab = CAPSTONE_LAB if self.label == "Capstone" else self.label
        self.ids_2025, self.ids_2026 = LLM_ID.findall(y2025), LLM_ID.findall(y2026)
        self.all_ten = (y2025, y2026) == ("all ten", "all ten")
        self.families = set(CODE.findall(families))

    def lesson(self) -> str:
        return (COURSE / self.page).read_text("utf-8")


@cache
def course_map() -> list[Row]:
    return [Row(cells) for cells in table(SYLLABUS.read_text("utf-8"), "## Course map")]


@cache
def crosswalk() -> dict[str, list[str]]:
    """2025 ID -> the cells of its crosswalk row."""
    rows = table(SYLLABUS.read_text("utf-8"), "## Crosswalk")
    return {LLM_ID.findall(cells[0])[0]: cells for cells in rows}


def linked_rows() -> list[Row]:
    return [r for r in course_map() if r.page]


def where_this_fits(row: Row) -> str:
    fits = section(row.lesson(), "## Where this fits")
    assert fits, f"{row.page} has no '## Where this fits' section"
    return fits


def lesson_owasp_ids(row: Row) -> list[str]:
    return list(dict.fromkeys(re.findall(r"\b(LLM\d\d):2025\b", where_this_fits(row))))


def lesson_atlas_ids(row: Row) -> set[str]:
    return set(ATLAS_ID.findall(where_this_fits(row)))


def test_course_map_links_the_lessons_in_nav_order():
    assert [r.page for r in linked_rows()] == [p for p in nav_pages() if COURSE / p in lesson_pages()]
    assert {COURSE / r.page for r in linked_rows()} == set(lesson_pages()), "link every lesson from the course map"
    labels = [r.label for r in course_map()]
    assert labels == sorted(labels, key=lambda label: "99" if label == "Capstone" else label)


@pytest.mark.parametrize("row", linked_rows(), ids=lambda r: r.label)
def test_owasp_2025_ids_agree_with_the_lesson(row):
    assert row.ids_2025 == lesson_owasp_ids(row)


def test_2026_ids_follow_the_crosswalk():
    translate = {old: LLM_ID.findall(cells[1])[0] for old, cells in crosswalk().items()}
    for row in course_map():
        assert row.all_ten or row.ids_2025, row.module
        assert row.ids_2026 == [translate[i] for i in row.ids_2025], row.module


def test_crosswalk_uses_the_official_names():
    assert list(crosswalk()) == list(OWASP_2025)
    for old, cells in crosswalk().items():
        assert cells[0] == f"{old} {OWASP_2025[old]}"
        new = LLM_ID.findall(cells[1])[0]
        assert cells[1] == f"{new} {OWASP_2026[new]}"
    assert sorted(LLM_ID.findall(cells[1])[0] for cells in crosswalk().values()) == sorted(OWASP_2026)


@cache
def probe_tags(probe: str) -> tuple[str, ...]:
    """The tags a probe class carries: garak's own, or the course's out-of-tree plugins'."""
    family, name = probe.split(".")
    package = "doubleedge.scan.plugins.probes" if family.startswith("doubleedge") else "garak.probes"
    return tuple(getattr(importlib.import_module(f"{package}.{family}"), name).tags)


def scan_probes(lab: str) -> tuple[str, ...]:
    return LAB_SCANS[lab].probes if lab in LAB_SCANS else COURSE_ONLY_SCANS.get(lab, ())


def test_every_scan_has_a_row():
    assert set(LAB_SCANS) | set(COURSE_ONLY_SCANS) <= {r.lab for r in course_map()}


@pytest.mark.parametrize("row", course_map(), ids=lambda r: r.label)
def test_garak_families_match_the_labs_scans(row):
    assert row.families == {p.split(".")[0] for p in scan_probes(row.lab)}


@cache
def garak_tag_names() -> dict[str, str]:
    """garak's descriptions of its tags (its data/tags.misp.tsv: tag, name, description)."""
    tsv = Path(importlib.import_module("garak").__file__).parent / "data" / "tags.misp.tsv"
    return dict(line.split("\t")[:2] for line in tsv.read_text("utf-8").splitlines() if "\t" in line)


def all_scan_probes() -> dict[str, set[str]]:
    """Probe -> the labs whose scans use it."""
    used: dict[str, set[str]] = {}
    for lab in [*LAB_SCANS, *COURSE_ONLY_SCANS]:
        for probe in scan_probes(lab):
            used.setdefault(probe, set()).add(lab)
    return used


def test_crosswalk_garak_tags_and_families():
    for old, cells in crosswalk().items():
        tag_cell, families_cell = cells[2], cells[3]
        if tag_cell == "none":
            assert families_cell == "none", old
            continue
        tag = CODE.findall(tag_cell)[0]
        assert tag_cell == f"`{tag}` {garak_tag_names()[tag].split(': ', 1)[1]}", old
        stock = {p.split(".")[0] for p in all_scan_probes() if not p.startswith("doubleedge") and tag in probe_tags(p)}
        assert set(CODE.findall(families_cell)) == stock, old
        assert families_cell != "none" or not stock


def test_crosswalk_lists_the_modules_of_each_risk():
    for old, cells in crosswalk().items():
        expected = [r.label for r in course_map() if old in r.ids_2025 or r.all_ten]
        listed = [] if cells[5].strip() == "none" else [m.strip() for m in cells[5].split(",")]
        assert listed == expected, old


def test_atlas_techniques_are_the_lessons_own():
    cited = {r.label: lesson_atlas_ids(r) for r in linked_rows()}
    in_crosswalk = {old: set(ATLAS_ID.findall(cells[4])) for old, cells in crosswalk().items()}
    for row in linked_rows():
        placed = set().union(*(in_crosswalk[i] for i in row.ids_2025))
        assert cited[row.label] <= placed, f"{row.label}: place each cited technique on one of the module's risks"
    assert set().union(*in_crosswalk.values()) == set().union(*cited.values())
    atlas_rows = table(SYLLABUS.read_text("utf-8"), "The names are those of ATLAS release")
    listed = {ATLAS_ID.findall(cells[0])[0]: cells for cells in atlas_rows}
    assert set(listed) == set().union(*cited.values())
    for technique, cells in listed.items():
        assert cells[1] == ATLAS[technique]
        assert cells[2] == ", ".join(label for label, ids in cited.items() if technique in ids)


def test_family_table_shows_each_familys_real_tags():
    rows = {CODE.findall(cells[0])[0]: cells for cells in table(SYLLABUS.read_text("utf-8"), "## garak probe families")}
    used = all_scan_probes()
    label = {r.lab: r.label for r in course_map()}
    assert set(rows) == {p.split(".")[0] for p in used}
    for family, cells in rows.items():
        probes = [p for p in used if p.split(".")[0] == family]
        tags = set().union(*(probe_tags(p) for p in probes))
        labs = sorted(set().union(*(used[p] for p in probes)), key=lambda lab: list(label).index(lab))
        assert cells[1] == ", ".join(label[lab] for lab in labs), family
        assert set(CODE.findall(cells[2])) == {t for t in tags if t.startswith("owasp:")}, family
        avid = sorted(t for t in tags if t.startswith("avid-effect:"))
        assert cells[3] == (", ".join(f"`{t}` {garak_tag_names()[t]}" for t in avid) or "none"), family


def lesson_time(row: Row) -> tuple[str, str]:
    time = section(row.lesson(), '!!! info "Time"')
    return re.search(r"Teaching: (\S+) minutes", time).group(1), re.search(r"Lab: (\S+) minutes", time).group(1)


@pytest.mark.parametrize("row", linked_rows(), ids=lambda r: r.label)
def test_time_is_the_lessons(row):
    teaching, lab = lesson_time(row)
    assert row.time == f"{teaching} min + lab {lab} min"


def test_total_time():
    times = [lesson_time(r) for r in linked_rows()]
    labs = [[int(n) for n in lab.split("–")] for _, lab in times]
    total = re.search(r"take (\d+) minutes of teaching and (\d+)–(\d+) minutes of lab work", SYLLABUS.read_text())
    assert total, "the course map needs its total time"
    assert int(total.group(1)) == sum(int(teaching) for teaching, _ in times)
    assert (int(total.group(2)), int(total.group(3))) == (sum(r[0] for r in labs), sum(r[-1] for r in labs))


def test_prerequisites_come_earlier():
    earlier: list[str] = []
    for row in course_map():
        for first, last in re.findall(r"\b(\d\d)(?:–(\d\d))?\b", row.prerequisites):
            assert first in earlier and (not last or last in earlier), f"{row.label} needs {first}"
        earlier.append(row.label)


# --- both edges: where each benefit, risk and way forward is practised ------------------------

# The double edge of the home page: open weights' benefits, risks and ways forward, in order.
BOTH_EDGES = [
    "Benefit: lower cost",
    "Benefit: customization",
    "Benefit: community collaboration",
    "Benefit: transparency",
    "Benefit: data stays home",
    "Risk: data privacy",
    "Risk: cybersecurity vulnerabilities",
    "Risk: quality control",
    "Risk: ethics and misuse",
    "Way forward: regulation",
    "Way forward: community governance",
    "Way forward: security education",
]
# "Lab 07 Exercise 3", "Lab 03 Exercises 1 to 5", "Lab 06 Exercises 1 and 3", "Capstone Exercise 1"
EXERCISES_CITED = re.compile(r"(?:Lab (\d\d)|Capstone) Exercises? (\d+)(?: (to|and) (\d+))?")


def both_edges() -> list[list[str]]:
    return table(SYLLABUS.read_text("utf-8"), "## Both edges")


def cited_exercises(cell: str) -> list[tuple[str, int]]:
    """(lab number, exercise number) of every graded exercise a cell names."""
    cited = []
    for lab, first, joint, last in EXERCISES_CITED.findall(cell):
        numbers = [int(first)] if not joint else [int(first), int(last)]
        if joint == "to":
            numbers = list(range(int(first), int(last) + 1))
        cited += [(lab or CAPSTONE_LAB, n) for n in numbers]
    return cited


def graded_exercises(lab: str) -> set[int]:
    """The numbers of the ``### Exercise N (graded, ...)`` headings in a lab's source notebook."""
    import nbformat

    cells = nbformat.read(LABS[lab].source_notebook, as_version=4).cells
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    return {int(n) for n in re.findall(r"^### Exercise (\d+) \(graded", text, flags=re.M)}


def test_both_edges_lists_every_benefit_risk_and_way_forward():
    assert [row[0].replace("**", "") for row in both_edges()] == BOTH_EDGES


def test_both_edges_cites_graded_exercises_that_exist():
    for point, graded, _ in both_edges():
        cited = cited_exercises(graded)
        assert cited or graded.startswith(("**None yet", "Every lab", "Labs ")), f"{point}: name the exercise"
        for lab, number in cited:
            assert number in graded_exercises(lab), f"{point}: Lab {lab} has no graded Exercise {number}"


def test_both_edges_says_where_prose_only_points_are_taught():
    for point, graded, prose in both_edges():
        if graded.startswith("**None yet"):
            assert re.search(r"\]\(\d\d-[a-z-]+/index\.md", prose), f"{point}: link the lessons that teach it"


def test_the_exercise_citation_reader():
    assert cited_exercises("Lab 03 Exercises 1 to 3; Lab 06 Exercises 1 and 3; Capstone Exercise 1") == [
        ("03", 1), ("03", 2), ("03", 3), ("06", 1), ("06", 3), (CAPSTONE_LAB, 1)]  # fmt: skip


# --- the glossary and the wording of the pages ---------------------------------------------


def glossary_headings() -> list[str]:
    return [text for kind, text in markers(GLOSSARY.read_text("utf-8")) if kind == "h2"]


def slug(heading: str) -> str:
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", heading.lower()).strip())


def test_every_abbreviation_has_a_glossary_entry():
    terms = re.findall(r"^\*\[(.+?)\]:", (COURSE / "includes" / "abbreviations.md").read_text("utf-8"), flags=re.M)
    assert terms
    words = [set(re.findall(r"[\w-]+", h)) for h in glossary_headings()]

    def defined(term: str) -> bool:
        forms = {term, term[:-1]} if term.endswith("s") and term[:-1].isupper() else {term}
        return any(forms & w for w in words)

    assert [t for t in terms if not defined(t)] == []


def test_glossary_entries_are_unique_and_in_order():
    headings = glossary_headings()
    assert len(headings) == len(set(headings)) and len({slug(h) for h in headings}) == len(headings)
    assert headings == sorted(headings, key=str.casefold)


def test_glossary_defines_the_terms_the_lessons_rely_on():
    defined = " ".join(glossary_headings()).casefold()
    for term in [
        "exposure", "safetensors", "pickle", "canary", "datamarking", "content security policy (csp)",
        "parameterized query", "least privilege", "dp-sgd", "regression gate", "system card", "model card",
        "avid", "attack success rate (asr)", "held-out set", "slopsquatting",
    ]:  # fmt: skip
        assert term in defined, term


# One name per concept: the name the course uses, and the variants the pages must not use.
ONE_NAME = [
    ("allow-list / block-list", re.compile(r"\b(?:[Aa]llow|[Bb]lock) ?lists?\b")),
    ("Module NN (a lesson and its lab)", re.compile(r"\bLesson \d\d\b")),
    ("attack success rate", re.compile(r"(?<![Aa]ttack )\bsuccess rates?\b")),
]


def wording_problems(text: str) -> list[str]:
    return [
        f"line {n}: {bad.group(0)!r}, write {name!r}"
        for n, line in outside_code(text)
        for name, pattern in ONE_NAME
        for bad in pattern.finditer(re.sub(r"`[^`]*`", "", line))
    ]


@pytest.mark.parametrize(
    "page", [*lesson_pages(), SYLLABUS, GLOSSARY, GRADING_PAGE], ids=lambda p: p.relative_to(COURSE).as_posix()
)
def test_pages_use_one_name_per_concept(page):
    assert wording_problems(page.read_text("utf-8")) == []


@pytest.mark.parametrize(
    "line",
    ["Scanners are blocklists.", "An allowlist of hosts.", "As Lesson 01 showed,", "The success rate fell."],
)
def test_the_wording_check_catches_variants(line):
    assert wording_problems(line)
    assert not wording_problems("The attack success rate of an allow-list in Module 01 (`LinkAllowlist`).")


# --- the learner page on grading -------------------------------------------------------------


def test_grading_page_states_the_graders_thresholds():
    rows = {cells[0]: " ".join(cells[1:]) for cells in table(GRADING_PAGE.read_text("utf-8"), "## The thresholds")}
    expected = {number: lab.thresholds() for number, lab in LABS.items() if lab.thresholds}
    assert set(expected) <= set(rows)
    for lab, phrases in expected.items():
        for phrase in phrases:
            assert phrase in rows[lab], (lab, phrase)


def test_grading_page_states_each_labs_allowed_difference():
    """The table under "Ordinary requests are checked for meaning" says what the Lab registry
    says (`doubleedge progress` prints the registry's text)."""
    rows = dict(table(GRADING_PAGE.read_text("utf-8"), "### Ordinary requests are checked for meaning"))
    expected = {(n if lab.numbered else "Capstone"): lab.ordinary_allowed for n, lab in LABS.items()
                if lab.ordinary_allowed}  # fmt: skip
    assert rows == expected


# --- figures quoted in the prose -------------------------------------------------------------


def test_lesson_07_draws_its_figures_from_the_records():
    """Module 07's prose quotes no retyped figure: each is a marker the site build fills from
    course/measured/memorization.json, the record the table and charts are drawn from; and the
    claims the prose makes in words hold for that record."""
    from doubleedge import figures
    from doubleedge.markers import INLINE_MARKER

    records = {name: figures.load(name) for name in figures.SETS}
    record, known = records["memorization"], {**figures.values(records), **figures.tables(records)}
    page = (COURSE / "07-memorization" / "index.md").read_text("utf-8")
    measured = page.split("### What the lab measured", 1)[1].split("## Scanning with garak", 1)[0]
    named = INLINE_MARKER.findall(measured)
    assert {"memorization-perplexity-unhardened", "memorization-perplexity-cleaned"} <= set(named)
    assert set(INLINE_MARKER.findall(page)) <= set(known), "a marker the build does not fill"
    typed = INLINE_MARKER.sub("", measured.split("### The grade", 1)[0])
    assert not re.findall(r"\b\d\.\d\d\b|\d%", typed), "a figure typed into the prose"
    runs = record["runs"]
    plain, clean = runs["unhardened"], runs["scrubbed + deduplicated"]
    assert clean["perplexity"] < plain["perplexity"], "the prose says scrubbing lowers perplexity"
    extracted = {c["insertions"] for c in plain["canaries"] if c["greedy_extracts"]}
    assert extracted == {64}, "the prose says greedy decoding recovers the canaries inserted 64 times"


@pytest.mark.parametrize("number", ["02", "03"])
def test_lessons_draw_their_layer_tables_from_the_records(number):
    """The table of what each layer does alone is a marker the site build fills from
    course/measured/layers.json, the prose around it types no figure of its own, and the
    claims it makes in words hold for that record."""
    from doubleedge import figures
    from doubleedge.markers import INLINE_MARKER

    lab = LABS[number]
    records = {name: figures.load(name) for name in figures.SETS}
    known = {**figures.values(records), **figures.tables(records)}
    page = lab.lesson.read_text("utf-8")
    assert f"<!-- measured:layers-{number} -->" in page
    assert set(INLINE_MARKER.findall(page)) <= set(known), "a marker the build does not fill"
    section = INLINE_MARKER.sub("", page.split("## Defenses that help", 1)[1].split("## Before and after", 1)[0])
    assert not re.findall(r"^\|.*\d%", section, re.MULTILINE), "a measured table typed in"
    why = section.split("Why 10%?", 1)[1].split("\n\n", 1)[0]
    assert not re.findall(r"\d%", why), "a figure typed into the prose"
    threshold = importlib.import_module(lab.checks).ASR_THRESHOLD
    layers = records["layers"]["labs"][number]["layers"]
    graded = {name: m["attack_success_rate"] for name, m in layers.items()}
    single = {name: rate for name, rate in graded.items() if name not in ("none", "reference")}
    assert graded["reference"] < threshold / 2, "the reference solution passes with room to spare"
    if number == "02":
        assert all(graded[name] >= threshold for name in ("delimiting", "stripping")), "single filters fail"
        assert graded["datamarking"] < threshold / 2, "datamarking passes with a wide margin"
    else:
        assert all(min(layers[n]["garak_asr"], layers[n]["heldout_asr"]) > 0.2 for n in single), "a fifth still works"
        assert min(single, key=single.get) == "authorization", "authorization does the most"
        assert max(single, key=single.get) == "redaction", "redaction does the least"
        assert graded["authorization"] >= threshold
