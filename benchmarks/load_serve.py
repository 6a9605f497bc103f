"""Load check of `tinymnist serve`: concurrent clients on 127.0.0.1 send good and bad images.

    python benchmarks/load_serve.py [CHECKPOINT] [--clients 8] [--requests 3000] [--max-seconds 100]

Run from the repository root (CHECKPOINT defaults to the test fixture, tests/fixtures/seed-2epochs.pt).

Starts the server itself (`tinymnist serve CHECKPOINT --port 0`, loopback only), sends a
bounded number of requests for at most a bounded time, stops the server, and writes
results/serve_load.json: requests/s, p50/p90/p99 latency, status counts, wrong digits, the
server's memory (resident set) before and after, the machine, and this command. Client and
server share the machine's cores. Exits 1 on any 5xx, connection error or wrong digit.
"""

import argparse
import io
import itertools
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx2
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from drawn_digits import render  # noqa: E402  (the test suite's programmatically drawn digits)

Case = tuple[str, str, bytes, int | None]  # name, form field, file bytes, expected digit (None: must be refused)


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def cases() -> list[Case]:
    """30 good images (drawn digits in three styles) and 6 bad uploads, one of each kind."""
    good = [
        (f"{d}-{fmt.lower()}", "file", render(d, side=side, dark_on_light=dark, fmt=fmt), d)
        for d in range(10)
        for side, dark, fmt in [(200, True, "PNG"), (48, False, "BMP"), (500, True, "JPEG")]
    ]
    seven = render(7)
    bad = [
        ("not-an-image", "file", b"just some text", None),
        ("empty", "file", b"", None),
        ("truncated", "file", seven[: len(seven) // 2], None),
        ("no-ink", "file", png(Image.new("L", (64, 64), 255)), None),
        ("decompression-bomb", "file", png(Image.new("1", (8_000, 8_000))), None),
        ("wrong-field", "image", seven, None),
    ]
    return good + bad


def rss_kib(pid: int) -> dict[str, int]:
    """The process's resident set now and at its peak, in KiB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"rss_kib": int(fields["VmRSS"].split()[0]), "peak_rss_kib": int(fields["VmHWM"].split()[0])}


def start_server(checkpoint: str, open_files: int | None = None, limits: str = "") -> tuple[subprocess.Popen, str]:
    """`tinymnist serve` on a free loopback port, optionally as under `ulimit -n open_files`, or
    `serve.serve` with `serve.Limits(<limits>)` where `limits` is given."""
    cmd = [sys.executable, "-m", "tinymnist", "serve", checkpoint, "--host", "127.0.0.1", "--port", "0"]
    if limits:
        code = f"from tinymnist import serve; serve.serve({checkpoint!r}, port=0, limits=serve.Limits({limits}))"
        cmd = [sys.executable, "-c", code]
    limit = open_files and (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files)))
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=limit or None)
    line = server.stdout.readline()
    if "http://127.0.0.1:" not in line:
        server.kill()
        sys.exit(f"the server did not start: {line!r}")
    return server, line.split(" at ")[1].split()[0]


def run_load(url: str, clients: int, requests: int, max_seconds: float) -> list[dict]:
    """Each client thread takes the next request number until `requests` are sent or time is up."""
    numbers = itertools.count()
    lock = threading.Lock()
    mix = cases()
    deadline = time.monotonic() + max_seconds
    records: list[dict] = []

    def client() -> None:
        with httpx2.Client(base_url=url, timeout=30) as http:
            while time.monotonic() < deadline:
                with lock:
                    n = next(numbers)
                if n >= requests:
                    return
                name, field, data, expected = mix[n % len(mix)]
                start = time.perf_counter()
                try:
                    answer = http.post("/predict", files={field: (f"{name}.img", data, "application/octet-stream")})
                    status, digit = answer.status_code, answer.json().get("digit")
                except httpx2.HTTPError as e:
                    status, digit = f"error: {type(e).__name__}", None
                latency = time.perf_counter() - start
                bad = expected is None
                ok = status in (400, 413, 422) if bad else status == 200 and digit == expected
                with lock:
                    records.append({"case": name, "bad": bad, "status": status, "ok": ok, "latency": latency})

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return records


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default="tests/fixtures/seed-2epochs.pt")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default: 8)")
    parser.add_argument("--requests", type=int, default=3000, help="requests in all (default: 3000)")
    parser.add_argument("--max-seconds", type=float, default=100, help="stop sending after this long (default: 100)")
    parser.add_argument("--out", default="results/serve_load.json")
    args = parser.parse_args()
    from tinymnist.checkpoint import save_json  # here: torch, which the spawned clients need not import
    from tinymnist.results import machine

    load_before = round(os.getloadavg()[0], 2)  # other work on the machine slows the figures down
    server, url = start_server(args.checkpoint)
    try:
        httpx2.get(f"{url}health", timeout=30).raise_for_status()
        memory_before = rss_kib(server.pid)
        start = time.perf_counter()
        records = run_load(url, args.clients, args.requests, args.max_seconds)
        seconds = time.perf_counter() - start
        memory_after = rss_kib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    latencies_ms = [r["latency"] * 1000 for r in records]
    statuses: dict[str, int] = {}
    for r in records:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    server_errors = sum(n for s, n in statuses.items() if not s.isdigit() or int(s) >= 500)
    wrong = sorted({r["case"] for r in records if not r["ok"]})
    result = {
        "what": "tinymnist serve under load: concurrent clients POST /predict on 127.0.0.1",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "checkpoint": args.checkpoint,
        "clients": args.clients,
        "requests": len(records),
        "bad_requests": sum(r["bad"] for r in records),
        "seconds": round(seconds, 2),
        "requests_per_second": round(len(records) / seconds, 1),
        "latency_ms": {
            "p50": round(percentile(latencies_ms, 0.5), 1),
            "p90": round(percentile(latencies_ms, 0.9), 1),
            "p99": round(percentile(latencies_ms, 0.99), 1),
            "max": round(max(latencies_ms), 1),
        },
        "status_counts": statuses,
        "server_errors_5xx_or_connection": server_errors,
        "wrong_answers": wrong,
        "server_memory_before": memory_before,
        "server_memory_after": memory_after,
        "machine": machine("cpu"),
        "load_average_1min_before": load_before,
        "note": "client threads and the server share the machine's cores, with whatever else was running",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_json(Path(args.out), result)
    print(
        f"{len(records)} requests in {seconds:.1f} s: {result['requests_per_second']} req/s, "
        f"p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms; statuses {statuses}; "
        f"server RSS {memory_before['rss_kib'] // 1024} -> {memory_after['rss_kib'] // 1024} MiB; results: {args.out}"
    )
    return 1 if server_errors or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
