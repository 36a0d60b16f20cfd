"""CLI: write everything generated from prometheus/slos.yml, or check it is up to date.

    python -m dev.slo            # (re)write the generated files (make slo)
    python -m dev.slo --check    # exit 1 and list the files that differ (make test)
    python -m dev.slo --spec F   # read another spec (tests)
    python -m dev.slo --out D    # write the files under D instead of the repository (tests)

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


def _rel(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def generated(spec: Spec, root: Path = ROOT, docs_from: Path = ROOT) -> dict[Path, str]:
    """Every generated file (absolute path) -> its content. SpecError (one line naming the
    spec and the SLO) when the test model cannot build a case for an SLO, e.g. an objective
    whose scenarios would need more bad events than there are events."""
    out = {root / "prometheus/rules/slo.yml": rules.generate(spec)}
    for slo in spec.slos:
        for res in unit_tests.RESOLUTIONS:
            try:
                text = unit_tests.generate(spec, res, slo)
            except (ValueError, ZeroDivisionError, OverflowError) as exc:
                raise SpecError(
                    f"{_rel(spec.path)}: service {slo.service}: SLO {slo.name}: its "
                    f"{res.name} promtool tests cannot be generated ({exc}); an objective "
                    "closer to 100 or the default windows avoid that") from exc
            out[root / "tests/rules" / unit_tests.test_file(slo, res)] = text
    for path, marker in docs.TABLES:
        try:
            # A file with two tables (docs/alerting.md) gets both: each replacement starts
            # from the previous one's result, not from the file on disk again.
            current = out.get(root / path) or (docs_from / path).read_text(encoding="utf-8")
            table = docs.table(spec, marker)
        except OSError as exc:
            raise SpecError(f"{path}: cannot read: {exc.strerror}") from exc
        except (ValueError, ZeroDivisionError) as exc:
            raise SpecError(f"{_rel(spec.path)}: the {marker} table of {path} cannot be "
                            f"computed ({exc})") from exc
        out[root / path] = docs.replace(current, marker, table, path)
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
    parser.add_argument("--out", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    try:
        spec = load(args.spec.resolve())
        files = generated(spec, out)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.check:
        # The files just generated, when they are the repository's (computed once).
        problems = drift(spec, files=files) if out == ROOT else drift(spec, out)
        for p in problems:
            print(p, file=sys.stderr)
        if not problems:
            print(f"SLO files up to date: {len(files)} generated from {_rel(spec.path)}")
        return 1 if problems else 0
    changed = 0
    for path in files:  # refuse before writing anything
        if path.exists() and not path.is_file():
            print(f"{path.relative_to(out)}: is not a file (a directory?); remove it, then run "
                  "make slo again", file=sys.stderr)
            return 1
    for path, text in files.items():
        try:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                print(f"updated {path.relative_to(out)}")
                changed += 1
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{path.relative_to(out)}: cannot write: {getattr(exc, 'strerror', exc)}",
                  file=sys.stderr)
            return 1
    print(f"{len(files)} files generated from {_rel(spec.path)} ({changed} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
