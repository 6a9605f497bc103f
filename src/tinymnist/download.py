"""Download a dataset (`tinymnist.data.DATASETS`) into the cache: its mirrors tried in turn,
retries, a progress bar, the SHA-256 of the decompressed content checked (decompressing no more
than the file's expected size), and files renamed into place only once verified, so an
interrupted download never leaves a file that looks complete.
"""

import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from tinymnist.data import DEFAULT, DataError, Dataset, expected_size, get, read_bytes

# Each dataset's mirrors are tried in order; TINYMNIST_MIRRORS (comma-separated base URLs)
# replaces the list of whichever dataset is downloaded.
ATTEMPTS = 2  # per mirror and file
TIMEOUT = 30  # seconds without data before a connection is given up
CHUNK = 1 << 16
GZIP_OVERHEAD = 1 << 16  # a gzip file is at most its content plus this much; more is not the file


def mirrors(spec: Dataset) -> list[str]:
    env = os.environ.get("TINYMNIST_MIRRORS")
    urls = env.split(",") if env else spec.mirrors
    return [u.strip().rstrip("/") + "/" for u in urls if u.strip()]


def _fetch(url: str, dest: Path, limit: int) -> None:
    """Stream `url` into `dest`; raise OSError on any transfer fault, a short read or over `limit` bytes."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=url.rsplit("/", 1)[-1],
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
            leave=False,
        )
        received = 0
        with bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
                if received > limit:
                    raise OSError(f"more than {limit:,} bytes sent: not this file")
        if total is not None and received != total:
            raise OSError(f"transfer interrupted after {received} of {total} bytes")


def _verified(path: Path, name: str, spec: Dataset) -> str | None:
    """None if the file holds the dataset's `name`, else what is wrong."""
    try:
        content = read_bytes(path, expected_size(name))
    except DataError as e:
        return str(e).removeprefix(f"{path}: ")
    if hashlib.sha256(content).hexdigest() != spec.files[name]:
        return "checksum mismatch"
    return None


def download_file(name: str, folder: Path, dataset: str = DEFAULT) -> Path:
    """Fetch `name`.gz into `folder` from the first mirror that serves the dataset's content."""
    spec = get(dataset)
    final = folder / f"{name}.gz"
    part = folder / f"{name}.gz.part"
    problems: dict[str, str] = {}  # mirror: its last problem
    for base in mirrors(spec):
        for attempt in range(ATTEMPTS):
            try:
                _fetch(base + final.name, part, expected_size(name) + GZIP_OVERHEAD)
                problem = _verified(part, name, spec)
            except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
                problem = str(getattr(e, "reason", None) or e)
            if problem is None:
                os.replace(part, final)
                return final
            part.unlink(missing_ok=True)
            problems[base] = problem
            if "checksum" in problem or "404" in problem:
                break  # the mirror answered with the wrong file: retrying will not help
            time.sleep(0.5 * (attempt + 1))
    tried = "; ".join(f"{base} ({problem})" for base, problem in problems.items())
    raise DataError(f"could not download {final.name} from {tried or 'no mirror (TINYMNIST_MIRRORS is empty)'}")


def download_dataset(spec: Dataset, folder: Path) -> None:
    """Download whichever of the four files `folder` lacks; a failure ends with what to do."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in spec.files:
        if not (folder / f"{name}.gz").is_file() and not (folder / name).is_file():
            print(f"downloading {name}.gz into {folder}", file=sys.stderr)
            try:
                download_file(name, folder, spec.name)
            except DataError as e:
                raise DataError(
                    f"{e}. Check the network or set TINYMNIST_MIRRORS=URL,..., or put the four files of "
                    f"{spec.title} ({', '.join(f'{n}.gz' for n in spec.files)}) in a folder and pass --data-dir "
                    f"FOLDER or set {spec.env}=FOLDER"
                ) from None
