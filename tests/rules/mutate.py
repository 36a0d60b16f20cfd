"""Mutation testing of the rules against their promtool unit tests.

Each mutant changes one thing in one rule and must make `promtool test rules` fail (the
mutant is "killed"). Operators:
  - invert a comparison outside label matchers (> to <=, < to >=, ...)   alerts and records;
  - multiply or divide a comparison's threshold by 10 (`> 0.05` -> `> 0.5`, `> 0.005`);
  - halve or double `for`, or drop it;                                   alerts;
  - drop one label from an aggregation's `by (...)` (`sum by (env, service)` ->
    `sum by (service)`), except a label the rule sets itself           alerts and records.
A surviving mutant means the unit tests would not notice that change.

    .venv/bin/python -m tests.rules.mutate                 # every rule (make mutation)
    .venv/bin/python -m tests.rules.mutate HighErrorRate ServiceDown   # rules by name

Which test files run: those that load the mutated rule file. For prometheus/rules/slo.yml
the generated tests are split per SLO (tests/rules/slo-<service>-<slo>.*.test.yml), and a
mutant in the group slo-<service>-<slo> can only change that SLO's series, so only its files
run (the slo-budget group reads every SLO: all of them).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.rules import ruleset

INVERSE = {">": "<=", "<": ">=", ">=": "<", "<=": ">", "==": "!=", "!=": "=="}
_NUMBER = re.compile(r"\s*\(?\s*(-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w.])")
_BY = re.compile(r"\bby\s*\(([^()]*)\)")


def _outside(expr: str) -> list[bool]:
    """For each character: True when it is outside strings and {label matchers}."""
    mask, depth, quote, i = [False] * len(expr), 0, "", 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif depth == 0:
            mask[i] = True
        i += 1
    return mask


def comparison_spans(expr: str) -> list[tuple[int, int]]:
    """(start, end) of each comparison operator, skipping strings and {label matchers}."""
    ok = _outside(expr)
    spans, i = [], 0
    while i < len(expr):
        c = expr[i]
        if ok[i] and c in "<>=!":
            two = expr[i:i + 2]
            if two in ("<=", ">=", "==", "!="):
                spans.append((i, i + 2))
                i += 1
            elif c in "<>":
                spans.append((i, i + 1))
        i += 1
    return spans


def threshold_spans(expr: str) -> list[tuple[int, int]]:
    """(start, end) of each number a comparison compares with (the literal right after the
    operator, e.g. `> 0.05`, `>= 10`)."""
    out = []
    for _, end in comparison_spans(expr):
        m = _NUMBER.match(expr, end)
        if m:
            out.append((m.start(1), m.end(1)))
    return out


def by_labels(expr: str) -> list[tuple[int, int, list[str]]]:
    """(start, end, labels) of the label list of each `by (...)` outside strings."""
    ok = _outside(expr)
    out = []
    for m in _BY.finditer(expr):
        if ok[m.start()]:
            labels = [x.strip() for x in m.group(1).split(",") if x.strip()]
            out.append((m.start(1), m.end(1), labels))
    return out


def _scaled(text: str, factor: float) -> str:
    return f"{float(text) * factor:.12g}"


@dataclass(frozen=True)
class Mutant:
    rule: ruleset.Rule
    what: str
    expr: str
    hold: str | None  # the new `for` ("" drops it), None keeps it
    only: str = ""  # run only the test files whose name ends so (a quicker sample)

    def describe(self) -> str:
        return f"{self.rule.key}: {self.what}"


def _context(expr: str, start: int, end: int) -> str:
    return " ".join(expr[max(0, start - 30):end + 12].split())


def mutants(rule: ruleset.Rule) -> list[Mutant]:
    expr, out = rule.expr, []
    for start, end in comparison_spans(expr):
        op = expr[start:end]
        out.append(Mutant(rule, f"invert `{op}` in ...{_context(expr, start, end)}...",
                          expr[:start] + INVERSE[op] + expr[end:], None))
    if rule.is_alert:
        for start, end in threshold_spans(expr):
            if float(expr[start:end]) == 0:
                continue  # 0 x 10 is 0: no mutant
            for factor, name in ((10, "x 10"), (0.1, "/ 10")):
                new = _scaled(expr[start:end], factor)
                out.append(Mutant(rule, f"threshold {expr[start:end]} {name} = {new} in "
                                        f"...{_context(expr, start, end)}...",
                                  expr[:start] + new + expr[end:], None))
    static = rule.raw.get("labels", {}) or {}
    for start, end, labels in by_labels(expr):
        for label in labels:
            if label in static:
                # The rule sets this label itself: dropping it from `by` only merges series
                # that differ in it, and its selectors pin it (the SLO spec requires that).
                continue
            rest = ", ".join(x for x in labels if x != label)
            out.append(Mutant(rule, f"drop `{label}` from by ({', '.join(labels)})",
                              expr[:start] + rest + expr[end:], None))
    hold = rule.raw.get("for")
    if rule.is_alert and hold:
        secs = ruleset.seconds(hold)
        out.append(Mutant(rule, f"drop `for: {hold}`", expr, ""))
        for factor, name in ((0.5, "halve"), (2, "double")):
            new = _duration(secs * factor)
            out.append(Mutant(rule, f"{name} `for: {hold}` to {new}", expr, new))
    return out


def _duration(secs: float) -> str:
    secs = int(secs)
    for unit, size in (("h", 3600), ("m", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def _tests_for(rule: ruleset.Rule) -> list[Path]:
    files = [tf for tf in ruleset.test_files()
             if any(rule.file.resolve() in paths
                    for paths in ruleset.loaded_rule_files(tf).values())]
    if rule.file.name == "slo.yml" and rule.group.startswith("slo-") and rule.group != "slo-budget":
        own = [tf for tf in files if tf.name.startswith(f"{rule.group}.")]
        return own or files
    return files


def run(mutant: Mutant) -> tuple[Mutant, bool, str]:
    """Apply the mutant in a scratch copy of the repo layout; True when the tests fail."""
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        root = Path(tmp)
        shutil.copytree(ruleset.RULES_DIR, root / "prometheus/rules")
        (root / "tests/rules").mkdir(parents=True)
        target = root / "prometheus/rules" / mutant.rule.file.name
        doc = ruleset.load_yaml(target)
        raw = next(g for g in doc["groups"] if g["name"] == mutant.rule.group)["rules"]
        raw = raw[mutant.rule.index]
        raw["expr"] = mutant.expr
        if mutant.hold == "":
            raw.pop("for")
        elif mutant.hold:
            raw["for"] = mutant.hold
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        tests = [tf for tf in _tests_for(mutant.rule) if tf.name.endswith(mutant.only)]
        for tf in tests:
            shutil.copy(tf, root / "tests/rules" / tf.name)
        res = ruleset.promtool("test", "rules", *[f"tests/rules/{tf.name}" for tf in tests],
                               cwd=root, timeout=600)
        return mutant, res.returncode != 0, (res.stdout + res.stderr)[-400:]


def run_all(selected: list[Mutant], workers: int = 2,
            report: bool = False) -> list[tuple[Mutant, bool, str]]:
    results = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(run, selected):
            if report:
                print(f"{'killed  ' if result[1] else 'SURVIVED'} {result[0].describe()}",
                      flush=True)
            results.append(result)
    return results


def main(argv: list[str]) -> int:
    rules = [r for r in ruleset.rules() if not argv or r.name in argv]
    selected = [m for r in rules for m in mutants(r)]
    print(f"{len(selected)} mutants of {len(rules)} rules", flush=True)
    started = time.time()
    results = run_all(selected, report=True)
    survivors = [m for m, killed, _ in results if not killed]
    print(f"\n{len(results) - len(survivors)}/{len(results)} mutants killed "
          f"({len(rules)} rules, {time.time() - started:.0f}s)")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
