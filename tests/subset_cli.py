"""The `tinymnist` command line in a real process, for tests that need one (kill -9, Ctrl-C, exit codes).

    python tests/subset_cli.py N M ARGS...

trains on the first N training and M test images ("all": every one). With PAUSE_AT_EPOCH=K:FILE in
its environment the process writes FILE when its K-th training epoch starts and waits there for a
signal, so that a test stops it at a known point instead of racing the epoch.
Like every test, it does not time the candidate settings (tests/helpers.fake_timings).
"""

import os
import sys
import time
from pathlib import Path

from helpers import fake_timings, subset  # this file's folder is first on sys.path when run as a script
from tinymnist import cli, data, engines, precision


def pause_at(epoch: int, ready: Path) -> None:
    """Make the `epoch`-th call of an engine's epoch announce itself in `ready`, then wait for a signal."""
    calls = []
    for engine in (engines.EagerEngine, engines.GraphEngine):
        real = engine.epoch

        def paused(self, generator, real=real):
            calls.append(1)
            if len(calls) == epoch:
                ready.write_text(str(os.getpid()))
                while True:  # until a signal's handler (Ctrl-C: KeyboardInterrupt) or default action ends it
                    time.sleep(0.05)
            return real(self, generator)

        engine.epoch = paused


def first(n: str) -> int | None:
    return None if n == "all" else int(n)


if __name__ == "__main__":
    train_images, test_images = first(sys.argv[1]), first(sys.argv[2])
    full = data.load
    data.load = lambda *args, **kwargs: subset(full(*args, **kwargs), train_images, test_images)
    precision.measure = fake_timings()  # as in every test (conftest.no_timing)
    if "PAUSE_AT_EPOCH" in os.environ:
        epoch, ready = os.environ["PAUSE_AT_EPOCH"].split(":", 1)
        pause_at(int(epoch), Path(ready))
    sys.exit(cli.main(sys.argv[3:]))
