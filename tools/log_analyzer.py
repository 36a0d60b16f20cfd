"""Log analysis: error patterns, latency degradation and user impact from JSON log lines.

    python -m tools.log_analyzer .run/logs/api.log [more files ...]   (or - for stdin)
    docker compose logs --no-log-prefix api | python -m tools.log_analyzer -

Reads the workload's JSON lines (non-JSON lines are counted and skipped) and
prints a JSON report. Changed from the guide: identifiers are masked before
numbers (so UUIDs and trace ids collapse into one pattern), timestamps are parsed
rather than compared as strings, latency is grouped by `route` (the field the
workload logs) and user impact counts finished requests, not every log line.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from statistics import fmean

MASKS = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "UUID"),
    (re.compile(r"\b[0-9a-f]{16,32}\b"), "HEX"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}\S*"), "TIMESTAMP"),
    (re.compile(r"\d+(\.\d+)?"), "N"),
)


def parse(lines: Iterable[str]) -> tuple[list[dict], int]:
    """JSON objects from the lines, and how many lines were not JSON objects."""
    entries, skipped = [], 0
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if isinstance(entry, dict):
            entries.append(entry)
        else:
            skipped += 1
    return entries, skipped


def pattern_of(message: str) -> str:
    for regex, placeholder in MASKS:
        message = regex.sub(placeholder, message)
    return message


def error_patterns(entries: list[dict]) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        if e.get("level") == "ERROR":
            groups[pattern_of(str(e.get("message", "")))].append(e)
    return {
        pattern: {
            "count": len(found),
            "first_seen": min(e.get("timestamp", "") for e in found),
            "last_seen": max(e.get("timestamp", "") for e in found),
            "sample": found[0],
        }
        for pattern, found in sorted(groups.items(), key=lambda kv: -len(kv[1]))
    }


def latency_degradation(entries: list[dict], bucket_minutes: int = 5) -> dict:
    """5-minute buckets whose mean request duration is over twice the overall mean."""
    buckets: dict[datetime, list[float]] = defaultdict(list)
    by_route: dict[str, list[float]] = defaultdict(list)
    for e in entries:
        if "duration_ms" not in e or "timestamp" not in e:
            continue
        ts = datetime.fromisoformat(str(e["timestamp"]).replace("Z", "+00:00"))
        start = ts.replace(minute=ts.minute // bucket_minutes * bucket_minutes, second=0,
                           microsecond=0)
        buckets[start].append(float(e["duration_ms"]))
        by_route[str(e.get("route", "unknown"))].append(float(e["duration_ms"]))
    if not buckets:
        return {}
    baseline = fmean(d for durations in buckets.values() for d in durations)
    degraded = [
        {"start": start.isoformat(), "mean_ms": round(fmean(d), 2),
         "factor": round(fmean(d) / baseline, 2)}
        for start, d in sorted(buckets.items())
        if baseline and fmean(d) > 2 * baseline
    ]
    return {
        "baseline_ms": round(baseline, 2),
        "mean_ms_by_route": {r: round(fmean(d), 2) for r, d in sorted(by_route.items())},
        "degraded_periods": degraded,
    }


def user_impact(entries: list[dict], threshold: float = 0.1) -> dict:
    """Per user: share of finished requests answered with a 5xx."""
    requests: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for e in entries:
        user, status = e.get("user_id"), e.get("status")
        if not user or status is None:
            continue
        requests[user] += 1
        errors[user] += int(str(status).startswith("5"))
    affected = {
        u: {"error_ratio": round(errors[u] / n, 3), "requests": n, "errors": errors[u]}
        for u, n in requests.items()
        if errors[u] / n > threshold
    }
    total = sum(requests.values())
    return {
        "users": len(requests),
        "affected_users": len(affected),
        "affected": affected,
        "overall_error_ratio": round(sum(errors.values()) / total, 4) if total else 0.0,
    }


def analyze(lines: Iterable[str]) -> dict:
    entries, skipped = parse(lines)
    return {
        "lines": len(entries) + skipped,
        "non_json_lines": skipped,
        "error_patterns": error_patterns(entries),
        "latency": latency_degradation(entries),
        "user_impact": user_impact(entries),
    }


def main(argv: list[str] | None = None) -> int:
    paths = (argv if argv is not None else sys.argv[1:]) or ["-"]
    lines: list[str] = []
    for p in paths:
        if p == "-":
            lines.extend(sys.stdin)
            continue
        try:
            lines.extend(Path(p).read_text(errors="replace").splitlines())
        except OSError as exc:
            print(f"log_analyzer: {p}: {exc.strerror}", file=sys.stderr)
            return 2
    try:
        json.dump(analyze(lines), sys.stdout, indent=2, default=str)
        print()
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped early: not an error
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
