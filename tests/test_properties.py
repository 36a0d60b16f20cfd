"""Property-based tests (hypothesis) of the parsers users feed: no input gives a traceback.

- the SLO spec (dev/slo/spec.py `load`, then dev/slo/rules.py `generate`): any YAML
  document set, any text, any bytes, and the real spec with any of its values replaced by
  another shape or deleted, loads to a Spec or raises SpecError (one line); what loads
  generates rules that are valid YAML;
- the log analyzer's line parser (tools/log_analyzer.py `analyze`): any bytes or text
  lines and any JSON objects with the known fields of any type make a report that
  serializes, and every line is counted once (used or skipped);
- the secrets generator's inputs (tools/secrets.py `ensure`): whatever bytes the existing
  secret files hold, and files or folders where the other kind belongs, it either
  creates the missing secrets or raises SecretsError, and never leaves an empty or
  half-made secret it reports as created.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dev.slo import rules, spec
from tools import log_analyzer
from tools import secrets as secrets_tool

ROOT = Path(__file__).resolve().parents[1]
GOOD_DOCS = list(yaml.safe_load_all((ROOT / "prometheus/slos.yml").read_text()))
# Derandomized and without an example database: `make test` checks the same examples on
# every run and writes nothing into the tree (raise max_examples locally to search more).
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Values of every shape YAML can hold, with the edge cases of the fields: numbers at and
# beyond the ranges, NaN, huge ints, durations, PromQL fragments, templates.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 100, 99.99995, 95, 90, 93.05, -1, "99.9", "5m", "0m", "1 hour", "30d",
                     "{{.window}}", "{{ .window }}", "rate(x[{{.window}}])", "",
                     'sum by (env, service) (rate(m{service="api"}[{{.window}}]))',
                     'sum by (env, service) (increase(m{service="api"}[{{.window}}]))',
                     'vector(1)', "m{", "{{ $labels.service }}: #1", "{{ $value }}", "{{",
                     "critical", "a-b", "-a", "A" * 300]),
    st.text(max_size=40),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=12), scalars),
                                                 inner, max_size=4)), max_leaves=12)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = [(i, p) for i, d in enumerate(GOOD_DOCS) for p in _paths(d) if p]


@st.composite
def mutated_specs(draw: st.DrawFn) -> list[Any]:
    docs = json.loads(json.dumps(GOOD_DOCS))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        i, path = draw(st.sampled_from(PATHS))
        parent = docs[i]
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation changed the shape above this path
    return docs


def _load(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "slos.yml"
        path.write_bytes(data)
        try:
            loaded = spec.load(path)
        except spec.SpecError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path)), str(exc)
            return
        yaml.safe_load(rules.generate(loaded))


@SETTINGS
@given(mutated_specs())
def test_slo_spec_any_mutation_is_a_spec_or_one_line(docs: list[Any]) -> None:
    try:
        text = yaml.safe_dump_all(docs, allow_unicode=True)
    except yaml.YAMLError:
        return  # not representable as YAML: nothing a user could write
    _load(text.encode())


@SETTINGS
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                 st.lists(values, max_size=3).map(
                     lambda d: yaml.safe_dump_all(d, allow_unicode=True).encode())))
def test_slo_spec_any_file_is_a_spec_or_one_line(data: bytes) -> None:
    _load(data)


# --- the log analyzer ---------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
              st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00",
                               "2026-01-01 00:00:00+02:00", "01/Jan/2026:00:00:00 +0000",
                               "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00",
                               "5ms", "ERROR", "500"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
FIELDS = ("timestamp", "level", "message", "duration_ms", "route", "user_id", "status")
entries = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=len(FIELDS))


def _line(entry: dict) -> str:
    return json.dumps(entry, allow_nan=True)


lines = st.lists(st.one_of(entries.map(_line), st.text(max_size=60), st.binary(max_size=60),
                           entries.map(lambda e: _line(e).encode())), max_size=30)


@SETTINGS
@given(lines)
def test_log_analyzer_any_lines_make_a_report(batch: list[str | bytes]) -> None:
    report = log_analyzer.analyze(batch)
    json.dumps(report, default=str)
    assert report["lines"] == len(batch)
    used = report["lines"] - sum(report["skipped_lines"].values())
    assert used >= 0


# --- the secrets generator ---------------------------------------------------------------------

SECRET_FILES = [str(p) for p in secrets_tool.expected_files(ROOT)]
contents = st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode),
                     st.sampled_from([b"", b"\n", b"  \n", b"\xff\xfe", b"ok-password"]))
layouts = st.dictionaries(st.sampled_from(SECRET_FILES),
                          st.one_of(contents, st.just("dir")), max_size=5)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(layouts)
def test_secrets_any_existing_files_are_kept_or_one_line(layout: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, value in layout.items():
            p = root / "secrets" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if p.exists():
                continue  # an earlier entry made a folder of this one's parent
            if value == "dir":
                p.mkdir(parents=True)
            else:
                p.write_bytes(value)
        before = {p: p.read_bytes() for p in (root / "secrets").rglob("*") if p.is_file()} \
            if (root / "secrets").is_dir() else {}
        try:
            created = secrets_tool.ensure(root, repo=ROOT)
        except secrets_tool.SecretsError as exc:
            assert "\n" not in str(exc)
            after = {p for p in (root / "secrets").rglob("*") if p.is_file()}
            assert after == set(before), "a refused run wrote files"
            return
        for p, data in before.items():
            assert p.read_bytes() == data, f"{p} was overwritten"
        for rel in created:
            assert (root / rel).read_bytes().strip(), f"{rel} created empty"
        shutil.rmtree(root / "secrets")
