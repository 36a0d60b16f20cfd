"""The log analyzer on log lines shaped like the workload's."""

import json

from tools import log_analyzer


def line(**fields: object) -> str:
    base = {"timestamp": "2026-11-29T10:00:00+00:00", "level": "INFO", "service": "api",
            "message": "request finished"}
    return json.dumps({**base, **fields})


def test_error_patterns_collapse_ids_and_numbers() -> None:
    lines = [
        line(level="ERROR", message="media 0b0f8a5e-1c7e-4a57-9a8e-2f1d3c4b5a69 failed after 3x"),
        line(level="ERROR", message="media 6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0 failed after 12x"),
        line(level="ERROR", message="database timeout"),
        "not json at all",
    ]
    report = log_analyzer.analyze(lines)
    assert report["non_json_lines"] == 1
    patterns = report["error_patterns"]
    assert list(patterns) == ["media UUID failed after Nx", "database timeout"]
    assert patterns["media UUID failed after Nx"]["count"] == 2


def test_degraded_bucket_is_found() -> None:
    lines = [line(timestamp=f"2026-11-29T10:{m:02d}:00+00:00", duration_ms=10, route="/a")
             for m in range(0, 30, 5) for _ in range(5)]
    lines += [line(timestamp="2026-11-29T10:31:00+00:00", duration_ms=400, route="/a")] * 5
    latency = log_analyzer.analyze(lines)["latency"]
    assert [p["start"] for p in latency["degraded_periods"]] == ["2026-11-29T10:30:00+00:00"]
    assert latency["mean_ms_by_route"]["/a"] > 10


def test_user_impact_counts_finished_requests() -> None:
    lines = [line(user_id="u1", status=500), line(user_id="u1", status=200),
             line(user_id="u2", status=200), line(user_id="u2", message="no status")]
    impact = log_analyzer.analyze(lines)["user_impact"]
    assert impact["users"] == 2
    assert impact["affected"] == {"u1": {"error_ratio": 0.5, "requests": 2, "errors": 1}}
    assert impact["overall_error_ratio"] == 0.3333


def test_missing_file_is_one_line(tmp_path, capsys) -> None:
    assert log_analyzer.main([str(tmp_path / "nope.log")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"log_analyzer: {tmp_path / 'nope.log'}: No such file or directory"
