"""CLI: write everything generated from prometheus/slos.yml, or check it is up to date.

    python -m dev.slo            # (re)write the generated files (make slo)
    python -m dev.slo --check    # exit 1 and list the files that differ (make test)
    python -m dev.slo --spec F   # read another spec (tests)

A bad spec is one line of error naming the file and the problem; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import docs, rules, unit_tests
from .spec import ROOT, SPEC, Spec, SpecError, load


def targets(root: Path = ROOT) -> list[Path]:
    """Every file `make slo` writes."""
    return [root / "prometheus/rules/slo.yml",
            *[root / "tests/rules" / unit_tests.test_file(slo, res)
              for slo in load().slos for res in unit_tests.RESOLUTIONS],
            *dict.fromkeys(root / path for path, _ in docs.TABLES)]


def generated(spec: Spec, root: Path = ROOT) -> dict[Path, str]:
    """Every generated file (absolute path) -> its content."""
    out = {root / "prometheus/rules/slo.yml": rules.generate(spec)}
    for slo in spec.slos:
        for res in unit_tests.RESOLUTIONS:
            out[root / "tests/rules" / unit_tests.test_file(slo, res)] = \
                unit_tests.generate(spec, res, slo)
    for path, marker in docs.TABLES:
        current = (root / path).read_text(encoding="utf-8")
        out[root / path] = docs.replace(current, marker, docs.table(spec, marker), path)
    return out


def drift(spec: Spec, root: Path = ROOT, files: dict[Path, str] | None = None) -> list[str]:
    """Generated files under `root` that are missing or differ (`files`: what the spec
    generates, relative to ROOT, when already computed)."""
    wanted = {root / p.relative_to(ROOT): t for p, t in files.items()} if files else \
        generated(spec, root)
    problems = []
    for path, text in wanted.items():
        rel = path.relative_to(root)
        if not path.is_file():
            problems.append(f"{rel}: missing (run make slo)")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{rel}: differs from prometheus/slos.yml (run make slo)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.slo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a generated file is not up to date")
    parser.add_argument("--spec", type=Path, default=SPEC, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        spec = load(args.spec.resolve())
        files = generated(spec)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.check:
        problems = drift(spec)
        for p in problems:
            print(p, file=sys.stderr)
        if not problems:
            print(f"SLO files up to date: {len(files)} generated from {SPEC.relative_to(ROOT)}")
        return 1 if problems else 0
    changed = 0
    for path, text in files.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"updated {path.relative_to(ROOT)}")
            changed += 1
    print(f"{len(files)} files generated from {SPEC.relative_to(ROOT)} ({changed} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
