"""Label values stay bounded whatever the clients send."""

from __future__ import annotations

import asyncio
import random
import string

from .helpers import run, samples, stack, value


async def call(app, method: str, path: str, user: str) -> int:  # type: ignore[no-untyped-def]
    """One request straight into the ASGI app (no HTTP client: 10,000 of them stay fast)."""
    raw_path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": raw_path,
             "raw_path": raw_path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": [(b"host", b"api.test"), (b"x-user-id", user.encode())],
             "client": ("127.0.0.1", 1234), "server": ("api.test", 80)}
    status = {}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status["code"] = message["status"]

    await app(scope, receive, send)
    return status["code"]


def test_ten_thousand_random_paths_and_users_add_almost_no_series() -> None:
    rng = random.Random(4)

    def word(n: int) -> str:
        return "".join(rng.choices(string.ascii_lowercase + string.digits, k=n))

    async def main() -> tuple[int, int, set[str]]:
        async with stack() as s:
            before = len(samples(s.api))
            requests = []
            for i in range(10_000):
                user = f"u{word(10)}"
                if i % 10 == 0:  # a real route with a random id: 404 from the handler
                    requests.append(("GET", f"/api/v1/media/{word(24)}", user, {404}))
                else:
                    requests.append((rng.choice(["GET", "POST", "PROPFIND"]),
                                     f"/{word(8)}/{word(12)}?q={word(5)}", user, {404, 405}))
            for start in range(0, len(requests), 500):  # 500 concurrent: the DB sleeps overlap
                batch = requests[start:start + 500]
                codes = await asyncio.gather(*(call(s.api, m, p, u) for m, p, u, _ in batch))
                for code, (_, path, _, allowed) in zip(codes, batch, strict=True):
                    assert code in allowed, (path, code)
            after = samples(s.api)
            endpoints = {dict(k[1]).get("endpoint") for k in after
                         if k[0] == "http_requests_total"}
            assert value(s.api, "active_users") == 10_000  # a value, not 10,000 series
            return before, len(after), endpoints

    before, after, endpoints = run(main)
    # new series: the 404 counters (GET, POST, OTHER on "unmatched" and GET on the media route)
    # plus their duration histograms; nothing per path or per user
    assert after - before <= 60, f"{after - before} new series from random traffic"
    assert endpoints <= {"unmatched", "/api/v1/media", "/api/v1/media/{media_id}",
                         "/api/v1/media/{media_id}/analyze", "/health", "/health/live",
                         "/health/ready", "/admin/faults"}
