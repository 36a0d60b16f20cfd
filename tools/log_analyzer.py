"""Log analysis: error patterns, latency degradation and user impact from JSON log lines.

    python -m tools.log_analyzer .run/logs/api.log [more files ...]   (or - for stdin)
    docker compose logs --no-log-prefix api | python -m tools.log_analyzer -

Reads the workload's JSON lines and prints a JSON report. A line it cannot use is
counted and skipped, never the end of the report: not JSON, not UTF-8 (read as bytes,
whatever the locale), or a field of the wrong kind (a `timestamp` that is not an ISO 8601
string, such as an epoch number or an nginx-style date; a `duration_ms` that is not a
number, such as "5ms" or null; a `user_id` or `status` that is an object). The report
says how many, by reason, under "skipped_lines". A timestamp without a UTC offset is
read as UTC. Changed from the guide: identifiers are masked before numbers (so UUIDs and
trace ids collapse into one pattern), timestamps are parsed rather than compared as
strings, latency is grouped by `route` (the field the workload logs) and user impact
counts finished requests, not every log line. Standard library only.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean
from typing import Any

MASKS = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "UUID"),
    (re.compile(r"\b[0-9a-f]{16,32}\b"), "HEX"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}\S*"), "TIMESTAMP"),
    (re.compile(r"\d+(\.\d+)?"), "N"),
)


NOT_JSON = "not a JSON object"
NOT_UTF8 = "invalid UTF-8"


def _timestamp(value: Any) -> str | None:
    """An ISO 8601 string -> the same instant in UTC, ISO formatted; None otherwise."""
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    try:
        return ts.astimezone(UTC).isoformat()
    except (OverflowError, ValueError):
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def clean(entry: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The entry with its known fields normalized, or None and the field that is unusable."""
    out = dict(entry)
    if "timestamp" in entry:
        out["timestamp"] = _timestamp(entry["timestamp"])
        if out["timestamp"] is None:
            return None, "timestamp"
    if "duration_ms" in entry:
        out["duration_ms"] = _number(entry["duration_ms"])
        if out["duration_ms"] is None:
            return None, "duration_ms"
    for key in ("user_id", "status"):
        value = entry.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return None, key
        out[key] = str(value)
    return out, None


def parse(lines: Iterable[str | bytes]) -> tuple[list[dict], Counter[str]]:
    """Usable JSON objects from the lines, and the skipped lines counted by reason."""
    entries: list[dict] = []
    skipped: Counter[str] = Counter()
    for line in lines:
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                skipped[NOT_UTF8] += 1
                continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            skipped[NOT_JSON] += 1
            continue
        if not isinstance(entry, dict):
            skipped[NOT_JSON] += 1
            continue
        cleaned, bad = clean(entry)
        if cleaned is None:
            skipped[f"unusable {bad}"] += 1
        else:
            entries.append(cleaned)
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
    def seen(found: list[dict], pick: Any) -> str | None:
        stamps = [e["timestamp"] for e in found if e.get("timestamp")]
        return pick(stamps) if stamps else None

    return {
        pattern: {
            "count": len(found),
            "first_seen": seen(found, min),
            "last_seen": seen(found, max),
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
        ts = datetime.fromisoformat(e["timestamp"])  # normalized to UTC by clean()
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


def analyze(lines: Iterable[str | bytes]) -> dict:
    entries, skipped = parse(lines)
    return {
        "lines": len(entries) + sum(skipped.values()),
        "non_json_lines": skipped[NOT_JSON],
        "skipped_lines": dict(sorted(skipped.items())),
        "error_patterns": error_patterns(entries),
        "latency": latency_degradation(entries),
        "user_impact": user_impact(entries),
    }


def main(argv: list[str] | None = None) -> int:
    paths = (argv if argv is not None else sys.argv[1:]) or ["-"]
    lines: list[bytes] = []
    for p in paths:
        # Bytes, split on newlines only: each line is decoded on its own, so one that is
        # not UTF-8 is counted, whatever the locale's encoding.
        if p == "-":
            lines.extend(sys.stdin.buffer.read().split(b"\n"))
            continue
        try:
            lines.extend(Path(p).read_bytes().split(b"\n"))
        except OSError as exc:
            print(f"log_analyzer: {p}: {exc.strerror}", file=sys.stderr)
            return 2
    lines = [line.rstrip(b"\r") for line in lines if line.strip()]
    try:
        json.dump(analyze(lines), sys.stdout, indent=2, default=str)
        print()
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped early: not an error
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
