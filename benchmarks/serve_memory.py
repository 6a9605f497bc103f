"""Does `tinymnist serve` give memory back after large decodes? With serve's glibc setting and without.

    python benchmarks/serve_memory.py [CHECKPOINT] [--bombs 6]

Run from the repository root (CHECKPOINT defaults to the test fixture, tests/fixtures/seed-2epochs.pt).

For each setting, starts `serve.serve` (loopback only, large decodes not niced), sends the
attack benchmark's bombs one after the other (each is decoded: 4096x4096 RGBA, 6324x6324 grey),
then a few good requests, and records the server's resident memory before, at its peak (VmHWM)
and after. Settings: serve's own (allocations over 256 KiB get their own mappings, returned when
freed) and glibc's default after large frees (MALLOC_MMAP_THRESHOLD_ at its 32 MiB ceiling).
Writes results/serve_memory.json with the machine (and commit), command and load average.
"""

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import httpx2

from tinymnist.checkpoint import save_json
from tinymnist.results import machine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_serve import cases, rss_kib, start_server  # noqa: E402
from serve_attack import bombs  # noqa: E402

LIMITS = "large_decode_nice=0"  # decodes at normal priority: on a busy machine a niced one barely runs
SETTINGS = {"serve's own (256 KiB)": None, "glibc's ceiling (32 MiB)": str(32 * 1024 * 1024)}


def measure(checkpoint: str, threshold: str | None, count: int) -> dict:
    os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)
    if threshold:
        os.environ["MALLOC_MMAP_THRESHOLD_"] = threshold
    server, url = start_server(checkpoint, limits=LIMITS)
    try:
        with httpx2.Client(base_url=url, timeout=60) as http:
            http.get("/health").raise_for_status()
            before = rss_kib(server.pid)["rss_kib"]
            files = bombs()
            statuses = [
                http.post("/predict", files={"file": ("bomb.png", files[i % 2], "image/png")}).status_code
                for i in range(count)
            ]
            for name, field, data, _ in [c for c in cases() if c[3] is not None][:10]:
                http.post("/predict", files={field: (f"{name}.img", data, "application/octet-stream")})
            after = rss_kib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "bomb_statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "server_rss_mib": {
            "before": round(before / 1024),
            "peak": round(after["peak_rss_kib"] / 1024),
            "after": round(after["rss_kib"] / 1024),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default="tests/fixtures/seed-2epochs.pt")
    parser.add_argument("--bombs", type=int, default=6, help="bombs sent one after the other (default: 6)")
    parser.add_argument("--out", default="results/serve_memory.json")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    settings = {name: measure(args.checkpoint, threshold, args.bombs) for name, threshold in SETTINGS.items()}
    for name, r in settings.items():
        print(name, r, flush=True)
    result = {
        "what": "tinymnist serve's memory after decoding bombs one at a time, by glibc mmap threshold",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "checkpoint": args.checkpoint,
        "bombs": args.bombs,
        "limits": LIMITS,
        "settings": settings,
        "machine": machine("cpu"),
        "load_average_before": load_before,
    }
    save_json(Path(args.out), result)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
