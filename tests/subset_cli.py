"""The `tinymnist` command line in a real process, on the first N training and M test images.

    python tests/subset_cli.py N M ARGS...

For tests that need a real process (kill -9, Ctrl-C, exit codes) but not a full MNIST epoch.
Like every test, it does not time the candidate settings (tests/helpers.fake_timings).
"""

import sys

from helpers import fake_timings, subset  # this file's folder is first on sys.path when run as a script
from tinymnist import cli, data, precision

if __name__ == "__main__":
    train_images, test_images = int(sys.argv[1]), int(sys.argv[2])
    full = data.load
    data.load = lambda *args, **kwargs: subset(full(*args, **kwargs), train_images, test_images)
    precision.measure = fake_timings()  # as in every test (conftest.no_timing)
    sys.exit(cli.main(sys.argv[3:]))
