"""The Rules view in Chromium against a real server and its real runs store: a rule file typed into the
page is validated (problems with their lines) and checked; the failed rules are listed with the API's
own numbers, their tokens (and a generation's steps) outlined — a pulse that stops under reduced
motion — and the check's rule log shows under its run in History.

Thresholds are chosen from the API's answer on the same text (``POST /api/rules/check``), so that on
any model one rule fails and one passes; the expected results are the API's answer to the same rules
on the same trace, which tests/server/test_rules_api.py checks against the library.
"""

from __future__ import annotations

import httpx
import pytest

from attnscope.render.palette import palette
from tests.conftest import CHINESE, ENGLISH
from tests.web.conftest import screenshot

NEW_TOKENS = 6


def counter(page, name: str) -> int:
    return int(page.evaluate(f"Number(document.body.dataset.{name} || 0)"))


def wait_for(page, name: str, before: int, timeout: int = 180_000) -> None:
    page.wait_for_function(f"Number(document.body.dataset.{name} || 0) > {before}", timeout=timeout)


def analyze(page, text: str) -> None:
    before = counter(page, "analyses")
    page.get_by_test_id("prompt-input").fill(text)
    page.get_by_test_id("prompt-input").press("Control+Enter")
    wait_for(page, "analyses", before)


def rule_file(word: str, word_mass: float, sink: float) -> str:
    """Four rules: the answer reads ``word`` with mass ≥ ``word_mass`` (critical), its mass on the first
    token is ≤ / ≥ ``sink`` (warning / info), and one on a word the text lacks (not evaluated)."""
    return f"""version: 1
rules:
  - name: reads-word
    description: the last position reads {word}
    from: {{answer: true}}
    to: {{text: "{word}"}}
    measure: mass
    comparison: ">="
    threshold: {word_mass}
    severity: critical
  - name: sink-bounded
    from: {{answer: true}}
    to: {{class: first}}
    measure: mass
    comparison: "<="
    threshold: {sink}
    severity: warning
  - name: sink-present
    from: {{answer: true}}
    to: {{class: first}}
    measure: mass
    comparison: ">="
    threshold: {sink}
    severity: info
  - name: absent
    from: {{answer: true}}
    to: {{text: "nowhere-to-be-found"}}
    measure: mass
    comparison: "<="
    threshold: 0.5
"""


def check_api(server, text: str, rules: str, **extra) -> dict:
    response = httpx.post(f"{server}/api/rules/check", json={"text": text, "rules": rules, **extra}, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def failing_rules(server, text: str, word: str) -> str:
    """The rule file whose reads-word and sink-bounded rules fail and sink-present passes on ``text``."""
    probe = check_api(server, text, rule_file(word, 0.0, 0.0))["results"]
    word_mass, sink = probe[0]["value"], probe[2]["value"]
    assert 0 < sink < 1 and word_mass < 1
    return rule_file(word, round(word_mass + (1 - word_mass) / 2, 4), round(sink / 2, 4))


def type_rules(page, rules: str) -> None:
    page.get_by_role("tab", name="Rules").click()
    page.get_by_test_id("rules-text").fill(rules)


def press_check(page) -> None:
    before = counter(page, "ruleChecks")
    page.get_by_test_id("rules-check").click()
    wait_for(page, "ruleChecks", before)


def flagged_tokens(page) -> dict[int, str]:
    """{token index: severity} of the outlined chips of the Tokens view."""
    nodes = page.locator("[data-testid=token].rule-flag")
    pairs = nodes.evaluate_all("n => n.map(e => [Number(e.dataset.tokenIndex), e.dataset.ruleSeverity])")
    return dict(pairs)


def expected_flags(body: dict) -> dict[int, str]:
    rank = {"info": 0, "warning": 1, "critical": 2}
    flags: dict[int, str] = {}
    for result in body["results"]:
        if result["passed"] is False:
            for token in result["where"]["tokens"]:
                known = flags.get(token["index"])
                if known is None or rank[result["severity"]] > rank[known]:
                    flags[token["index"]] = result["severity"]
    return flags


def assert_results_shown(page, expected: dict) -> None:
    failed = sorted(
        (r for r in expected["results"] if r["passed"] is False),
        key=lambda r: ["critical", "warning", "info"].index(r["severity"]),
    )
    items = page.locator("[data-testid=rule-violation]")
    shown = items.evaluate_all("n => n.map(e => [e.dataset.rule, e.dataset.severity, Number(e.dataset.value)])")
    assert (
        shown
        == [[r["rule"], r["severity"], r["value"]] for r in failed]
        == [
            ["reads-word", "critical", expected["results"][0]["value"]],
            ["sink-bounded", "warning", expected["results"][1]["value"]],
        ]
    )
    colours = items.evaluate_all(
        "n => n.map(e => getComputedStyle(e.querySelector('[data-testid=rule-severity]')).backgroundColor)"
    )
    severity = palette()["severity"]  # each badge in its severity's colour of the one palette
    assert colours == ["rgb({}, {}, {})".format(*severity[r["severity"]]) for r in failed]
    first = items.first
    assert first.get_attribute("data-layer") == str(failed[0]["where"]["layer"])
    assert first.get_attribute("data-head") == str(failed[0]["where"]["head"])
    assert first.get_attribute("data-tokens") == ",".join(str(t["index"]) for t in failed[0]["where"]["tokens"])
    text = first.inner_text()
    assert "reads-word" in text and "critical" in text and f"≥ {expected['results'][0]['threshold']}" in text
    assert page.locator("[data-testid=rule-passed]").evaluate_all("n => n.map(e => e.dataset.rule)") == ["sink-present"]
    assert page.locator("[data-testid=rule-unevaluated]").evaluate_all("n => n.map(e => e.dataset.rule)") == ["absent"]
    summary = page.get_by_test_id("rules-summary")
    assert [summary.get_attribute(f"data-{k}") for k in ("failed", "critical", "passed")] == ["2", "1", "1"]


def assert_history_shows_the_log(page, run_id: str, expected: dict) -> None:
    page.get_by_test_id("history-button").click()
    before = counter(page, "historySearches")
    page.get_by_test_id("history-search").click()
    wait_for(page, "historySearches", before)
    item = page.locator(f"[data-testid=run-item][data-run-id='{run_id}']")
    if not item.is_visible():  # folded under a newer view of the same text (the API's check, the click's analyses)
        group = page.locator(f"[data-testid=run-item]:has([data-testid=run-item][data-run-id='{run_id}'])")
        group.locator("> [data-testid=run-views]").click()
    before = counter(page, "runOpens")
    item.locator("> [data-testid=run-open]").click()
    wait_for(page, "runOpens", before)
    rows = page.locator("[data-testid=run-rule-log] [data-testid=run-rule-row]")
    logged = rows.evaluate_all("n => n.map(e => [e.dataset.rule, e.dataset.passed, e.dataset.rulesSha256])")
    sha = expected["rules_file"]["sha256"]
    expected_rows = [
        [r["rule"], "null" if r["passed"] is None else str(r["passed"]).lower(), sha] for r in expected["results"]
    ]
    assert sorted(logged) == sorted(expected_rows)
    page.get_by_test_id("run-rule-log").scroll_into_view_if_needed()


@pytest.mark.parametrize(("text", "word", "name"), [(ENGLISH, "France", "english"), (CHINESE, "中国", "chinese")])
def test_rules_are_checked_listed_outlined_and_logged(page, server, text, word, name):
    rules = failing_rules(server, text, word)
    analyze(page, text)
    type_rules(page, rules)

    # a broken file first: Validate names the line, Check refuses it with the same line
    broken = rules.replace('comparison: "<="', 'comparison: "=<"', 1)
    line = broken.splitlines().index('    comparison: "=<"') + 1
    before = counter(page, "ruleValidations")
    page.get_by_test_id("rules-text").fill(broken)
    page.get_by_test_id("rules-validate").click()
    wait_for(page, "ruleValidations", before)
    problems = page.locator("[data-testid=rules-problem]")
    assert problems.count() == 1 and problems.first.get_attribute("data-line") == str(line)
    assert f"line {line}" in problems.first.inner_text() and "comparison" in problems.first.inner_text()
    press_check(page)
    assert page.locator("[data-testid=rules-problem]").first.get_attribute("data-line") == str(line)
    assert page.locator("[data-testid=rule-violation]").count() == 0

    page.get_by_test_id("rules-text").fill(rules)
    before = counter(page, "ruleValidations")
    page.get_by_test_id("rules-validate").click()
    wait_for(page, "ruleValidations", before)
    assert page.locator("[data-testid=rules-problem]").count() == 0
    assert "Valid: 4 rules" in page.get_by_test_id("rules-status").inner_text()
    press_check(page)
    summary = page.get_by_test_id("rules-summary")
    expected = check_api(server, text, rules, trace_id=summary.get_attribute("data-trace-id"))
    assert_results_shown(page, expected)
    assert page.locator("[data-testid=error]").is_hidden()
    page.get_by_test_id("rules-text").evaluate("e => { e.scrollTop = 0; }")
    screenshot(page, f"rules-{name}")

    # the Tokens view outlines the failed rules' tokens: the word's (critical) and the first (warning)
    page.get_by_role("tab", name="Tokens").click()
    flags = flagged_tokens(page)
    assert flags == expected_flags(expected) and flags[0] == "warning"
    assert {i for i, s in flags.items() if s == "critical"} == {
        t["index"] for t in expected["results"][0]["where"]["tokens"]
    }
    shown = "".join(
        page.locator("[data-testid=token].rule-flag-critical").evaluate_all("n => n.map(e => e.textContent)")
    )
    assert word in shown.replace(" ", "")
    chip = page.locator("[data-testid=token].rule-flag").first
    pulse = "e => getComputedStyle(e, '::before').animationName"
    assert chip.evaluate(pulse) == "rule-pulse"
    page.emulate_media(reduced_motion="reduce")  # the outline stays, the pulse stops
    assert chip.evaluate(pulse) == "none"
    assert chip.evaluate("e => getComputedStyle(e, '::before').borderTopStyle") == "solid"
    page.emulate_media(reduced_motion="no-preference")
    screenshot(page, f"rules-{name}-tokens")

    # a violation clicked: its layer and head in the views (the Tokens view, the row of its query)
    page.get_by_role("tab", name="Rules").click()
    before = counter(page, "analyses")
    page.locator("[data-testid=rule-violation]").first.click()
    wait_for(page, "analyses", before)
    where = expected["results"][0]["where"]
    assert page.get_by_test_id("layer-select").input_value() == str(where["layer"])
    assert page.get_by_test_id("head-select").input_value() == str(where["head"])
    assert page.locator("#tab-tokens").get_attribute("aria-selected") == "true"
    assert flagged_tokens(page) == expected_flags(expected)  # still outlined on the new head's row

    assert_history_shows_the_log(page, summary.get_attribute("data-run-id"), expected)
    screenshot(page, f"rules-{name}-history")


def test_rules_are_checked_again_on_every_analysis(page, server):
    rules = failing_rules(server, CHINESE, "中国")
    page.get_by_role("tab", name="Rules").click()
    page.get_by_test_id("rules-example").select_option("medical-zh")  # the picker loads a shipped example
    examples = httpx.get(f"{server}/api/rules/examples", timeout=30).json()
    medical = next(e["text"] for e in examples if e["name"] == "medical-zh")
    assert page.get_by_test_id("rules-text").input_value() == medical
    type_rules(page, rules)
    page.get_by_test_id("rules-auto").check()
    before = counter(page, "ruleChecks")
    analyze(page, CHINESE)
    wait_for(page, "ruleChecks", before)
    summary = page.get_by_test_id("rules-summary")
    expected = check_api(server, CHINESE, rules, trace_id=summary.get_attribute("data-trace-id"))
    assert expected["text"] == CHINESE
    assert_results_shown(page, expected)
    # another text: checked again, the old outlines go (reads-word is not evaluated on it)
    before = counter(page, "ruleChecks")
    analyze(page, ENGLISH)
    wait_for(page, "ruleChecks", before)
    summary = page.get_by_test_id("rules-summary")
    english = check_api(server, ENGLISH, rules, trace_id=summary.get_attribute("data-trace-id"))
    assert english["results"][0]["passed"] is None  # 中国 is not in the English text
    assert summary.get_attribute("data-failed") == str(english["summary"]["failed"])
    page.get_by_role("tab", name="Tokens").click()
    assert flagged_tokens(page) == expected_flags(english)
    # the text persists in the browser
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    page.get_by_role("tab", name="Rules").click()
    assert page.get_by_test_id("rules-text").input_value() == rules


def test_step_rules_outline_the_timeline_steps_where_they_fail(page, server):
    probe = check_api(server, ENGLISH, rule_file("France", 0.0, 0.0), generate={"max_new_tokens": NEW_TOKENS})
    values = sorted(s["value"] for s in probe["results"][2]["steps"])
    middle = round((values[len(values) // 2 - 1] + values[len(values) // 2]) / 2, 6)  # some steps fail, some pass
    rules = rule_file("France", 0.0, middle)
    page.get_by_test_id("prompt-input").fill(ENGLISH)
    page.get_by_test_id("max-new-tokens").fill(str(NEW_TOKENS))
    before = counter(page, "generations")
    page.get_by_test_id("generate-button").click()
    wait_for(page, "generations", before)
    type_rules(page, rules)
    press_check(page)
    trace_id = page.get_by_test_id("rules-summary").get_attribute("data-trace-id")
    expected = check_api(server, probe["text"], rules, trace_id=trace_id)  # the page's generation, kept by the server
    assert [s["token"]["id"] for s in expected["generation"]["steps"]] == [
        s["token"]["id"] for s in probe["generation"]["steps"]
    ]  # greedy: the page's generation is the probe's
    bounded, present = expected["results"][1:3]  # sink ≤ middle (warning) and sink ≥ middle (info): complements
    failed_steps = {s["step"] for s in bounded["steps"] if s["passed"] is False}
    assert 0 < len(failed_steps) < NEW_TOKENS
    assert {s["step"] for s in present["steps"] if s["passed"] is False} == set(range(NEW_TOKENS)) - failed_steps
    steps = page.locator("[data-testid=step-token].rule-flag")
    shown = dict(steps.evaluate_all("n => n.map(e => [Number(e.dataset.step), e.dataset.ruleSeverity])"))
    assert shown == {step: "warning" if step in failed_steps else "info" for step in range(NEW_TOKENS)}
    item = page.locator("[data-testid=rule-violation][data-rule=sink-bounded]")
    assert float(item.get_attribute("data-value")) == bounded["value"]
    assert item.get_attribute("data-step") == str(bounded["where"]["step"])
    # clicked: the timeline goes to its worst step, the views to its layer and head
    before = counter(page, "analyses")
    item.click()
    wait_for(page, "analyses", before)
    assert page.get_by_test_id("timeline").input_value() == str(bounded["where"]["step"])
    assert page.get_by_test_id("layer-select").input_value() == str(bounded["where"]["layer"])
    screenshot(page, "rules-generation")


def test_personal_data_is_masked_in_the_results_until_revealed(page, server):
    phone = "13812345678"
    text = f"请拨打{phone}联系我。他的首都在于"
    rules = """version: 1
rules:
  - name: reads-phone
    from: {answer: true}
    to: {class: pii}
    measure: mass
    comparison: ">="
    threshold: 0.999
    severity: critical
"""
    analyze(page, text)
    type_rules(page, rules)
    press_check(page)
    item = page.locator("[data-testid=rule-violation]")
    assert item.count() == 1 and item.get_attribute("data-severity") == "critical"
    shown = item.inner_text()
    assert "[PHONE]" in shown and phone not in shown and phone[3:7] not in shown  # tokens and the counterfactual hint
    before = counter(page, "renders")
    page.get_by_test_id("reveal-pii").check()  # shown on this page only
    wait_for(page, "renders", before)
    assert phone in page.locator("[data-testid=rule-violation]").inner_text().replace("␣", "")
    page.get_by_test_id("reveal-pii").uncheck()
    run_id = page.get_by_test_id("rules-summary").get_attribute("data-run-id")
    logged = httpx.get(f"{server}/api/runs/{run_id}/rules", timeout=30).json()["rows"]
    assert len(logged) == 1 and phone not in str(logged) and "[PHONE]" in str(logged)


NURSE = "The nurse said he left and he came"
LEXICON = 'lexicons:\n  picked: [nurse, "he left"]\n'


def removal_rule(to: str, lexicons: str = "") -> str:
    """One "should attend" rule that fails on any text (mass on a few words ≥ 1): its counterfactual
    hint removes the spans ``to`` picks."""
    return f"""version: 1
{lexicons}rules:
  - name: reads-span
    from: {{answer: true}}
    to: {to}
    measure: mass
    comparison: ">="
    threshold: 1
    severity: critical
"""


def without(text: str, edits: list[dict]) -> str:
    """``text`` without each edit's span, placed by its own offset (code points, as the server counts)."""
    kept, cursor = [], 0
    for edit in sorted(edits, key=lambda e: e["start"]):
        assert text[edit["start"] : edit["start"] + len(edit["remove"])] == edit["remove"]
        kept.append(text[cursor : edit["start"]])
        cursor = edit["start"] + len(edit["remove"])
    return "".join(kept) + text[cursor:]


@pytest.mark.parametrize(
    ("text", "rules", "expected"),
    [
        (ENGLISH, removal_rule('{text: "France"}'), "The capital of  is"),
        # the first whole word "he" only: not the "he" inside "The", not the second "he"
        (NURSE, removal_rule('{text: "he", occurrence: first}'), "The nurse said  left and he came"),
        # a lexicon rule over two spans of one text: both removed, the other "he" kept
        (NURSE, removal_rule("{lexicon: picked}", LEXICON), "The  said  and he came"),
    ],
    ids=["word", "first-occurrence", "lexicon"],
)
def test_a_violation_offers_its_counterfactual(page, server, text, rules, expected):
    """A failed "should attend" rule's "Try without it" opens the Counterfactual view and runs the
    rule's own edits — every span it found, at its offset — whatever the view's form holds: the edited
    text is the text without those spans, as the API edits it. Editing the form afterwards runs the
    form's edit again."""
    hint = check_api(server, text, rules)["results"][0]["counterfactual"]
    assert without(text, hint["edits"]) == expected  # the hint's offsets, applied by hand
    analyze(page, text)
    page.get_by_role("tab", name="Counterfactual").click()  # an edit typed in the form is not the rule's
    page.get_by_test_id("counterfactual-kind").select_option("replace")
    page.get_by_test_id("counterfactual-old").fill("said")
    page.get_by_test_id("counterfactual-new").fill("wrote")
    type_rules(page, rules)
    press_check(page)
    before = counter(page, "counterfactuals")
    page.locator("[data-testid=rule-violation][data-rule=reads-span]").get_by_test_id("rule-counterfactual").click()
    wait_for(page, "counterfactuals", before, timeout=300_000)
    assert page.locator("#tab-counterfactual").get_attribute("aria-selected") == "true"
    edited = page.get_by_test_id("counterfactual-edited-text").inner_text()
    layer = int(page.get_by_test_id("layer-select").input_value())
    answer = httpx.post(
        f"{server}/api/counterfactual", json={"text": text, "edits": hint["edits"], "layer": layer}, timeout=300
    ).json()  # fmt: skip
    assert answer["counterfactual"]["text"] == expected
    assert edited.replace("‸", "") == expected
    assert page.locator("[data-testid=error]").is_hidden()
    mark = page.get_by_test_id("counterfactual-from-rule")
    assert mark.is_visible() and mark.get_attribute("data-rule") == "reads-span"
    assert mark.get_attribute("data-edits") == str(len(hint["edits"]))
    if text != NURSE:
        return
    page.get_by_test_id("counterfactual-new").fill("told")  # the form edited: its own edit runs again
    assert mark.is_hidden()
    before = counter(page, "counterfactuals")
    page.get_by_test_id("counterfactual-run").click()
    wait_for(page, "counterfactuals", before, timeout=300_000)
    assert page.get_by_test_id("counterfactual-edited-text").inner_text() == text.replace("said", "told")
