"""Mutation testing of the alert rules against their promtool unit tests.

For every alert rule, each mutant changes one thing and must make `promtool test rules`
fail (the mutant is "killed"):
  - every comparison operator outside label matchers is inverted (> to <=, < to >=, ...);
  - `for` is dropped.
A surviving mutant means the unit tests would not notice that change.

    .venv/bin/python -m tests.rules.mutate            # all alerts
    .venv/bin/python -m tests.rules.mutate HighErrorRate ServiceDown
"""

from __future__ import annotations

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


def comparison_spans(expr: str) -> list[tuple[int, int]]:
    """(start, end) of each comparison operator, skipping strings and {label matchers}."""
    spans, depth, quote, i = [], 0, "", 0
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
        elif depth == 0 and c in "<>=!":
            two = expr[i:i + 2]
            if two in ("<=", ">=", "==", "!="):
                spans.append((i, i + 2))
                i += 1
            elif c in "<>":
                spans.append((i, i + 1))
        i += 1
    return spans


@dataclass(frozen=True)
class Mutant:
    rule: ruleset.Rule
    what: str
    expr: str
    drop_for: bool

    def describe(self) -> str:
        return f"{self.rule.key}: {self.what}"


def mutants(rule: ruleset.Rule) -> list[Mutant]:
    out = []
    for start, end in comparison_spans(rule.expr):
        op = rule.expr[start:end]
        new = rule.expr[:start] + INVERSE[op] + rule.expr[end:]
        context = " ".join(rule.expr[max(0, start - 30):end + 12].split())
        out.append(Mutant(rule, f"invert `{op}` in ...{context}...", new, False))
    if rule.raw.get("for"):
        out.append(Mutant(rule, f"drop `for: {rule.raw['for']}`", rule.expr, True))
    return out


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
        if mutant.drop_for:
            raw.pop("for")
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        tests = [tf for tf in ruleset.test_files()
                 if any(mutant.rule.file.resolve() in paths
                        for paths in ruleset.loaded_rule_files(tf).values())]
        for tf in tests:
            shutil.copy(tf, root / "tests/rules" / tf.name)
        res = ruleset.promtool("test", "rules", *[f"tests/rules/{tf.name}" for tf in tests],
                               cwd=root, timeout=300)
        return mutant, res.returncode != 0, (res.stdout + res.stderr)[-400:]


def run_all(selected: list[Mutant], workers: int = 2) -> list[tuple[Mutant, bool, str]]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, selected))


def main(argv: list[str]) -> int:
    alerts = [a for a in ruleset.alerts() if not argv or a.name in argv]
    selected = [m for a in alerts for m in mutants(a)]
    started = time.time()
    results = run_all(selected)
    survivors = [m for m, killed, _ in results if not killed]
    for m, killed, _ in results:
        print(f"{'killed  ' if killed else 'SURVIVED'} {m.describe()}")
    print(f"\n{len(results) - len(survivors)}/{len(results)} mutants killed "
          f"({len(alerts)} alerts, {time.time() - started:.0f}s)")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
