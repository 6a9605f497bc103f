"""The downloader against a local HTTP server on 127.0.0.1 that serves ../shared/mnist."""

import functools
import gzip
import http.server
import shutil
import threading
from dataclasses import replace

import pytest

from tinymnist import data, download
from tinymnist.cli import main


class Handler(http.server.SimpleHTTPRequestHandler):
    truncate = False  # send the full Content-Length header but only half of the body

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        if self.truncate:
            body = source.read()
            outputfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            shutil.copyfileobj(source, outputfile)


@pytest.fixture
def serve(monkeypatch):
    servers = []

    def start(folder, truncate=False):
        handler = type("H", (Handler,), {"truncate": truncate})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    monkeypatch.setattr(download.time, "sleep", lambda s: None)
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_download_into_cache_then_train_data_loads(serve, monkeypatch, mnist_dir, tmp_path):
    monkeypatch.setenv("TINYMNIST_MIRRORS", serve(mnist_dir))
    monkeypatch.delenv("TINYMNIST_DATA", raising=False)
    loaded = data.load()
    assert len(loaded.train_labels) == 60000
    cache = data.cache_dir()
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in data.FILES)


def test_checksum_mismatch_falls_back_to_next_mirror(serve, monkeypatch, mnist_dir, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for name in data.FILES:  # every file replaced by the test labels
        shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", wrong / f"{name}.gz")
    monkeypatch.setenv("TINYMNIST_MIRRORS", f"{serve(wrong)},{serve(mnist_dir)}")
    path = download.download_file("t10k-images-idx3-ubyte", tmp_path)
    assert path.read_bytes() == (mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()


def test_checksum_mismatch_everywhere_is_an_error_and_leaves_nothing(serve, monkeypatch, mnist_dir, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", wrong / "t10k-images-idx3-ubyte.gz")
    monkeypatch.setenv("TINYMNIST_MIRRORS", serve(wrong))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(data.DataError, match="checksum mismatch"):
        download.download_file("t10k-images-idx3-ubyte", dest)
    assert list(dest.iterdir()) == []


def test_interrupted_transfer_leaves_no_file_that_looks_complete(serve, monkeypatch, mnist_dir, tmp_path):
    monkeypatch.setenv("TINYMNIST_MIRRORS", serve(mnist_dir, truncate=True))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz"):
        download.download_file("t10k-labels-idx1-ubyte", dest)
    assert list(dest.iterdir()) == []
    # and a good mirror after it completes the download
    monkeypatch.setenv("TINYMNIST_MIRRORS", f"{serve(mnist_dir, truncate=True)},{serve(mnist_dir)}")
    assert download.download_file("t10k-labels-idx1-ubyte", dest).is_file()


def test_no_network_is_a_clear_error(monkeypatch, tmp_path, capsys, trained_checkpoint):
    mirrors = ["http://127.0.0.1:9/", "http://127.0.0.1:1/"]  # nothing listens: connection refused
    monkeypatch.setenv("TINYMNIST_MIRRORS", ",".join(mirrors))
    monkeypatch.delenv("TINYMNIST_DATA", raising=False)
    code = main(["evaluate", str(trained_checkpoint), "--device", "cpu"])
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("downloading ")  # says what it tries, then one line of error
    assert code == 2 and lines[-1].startswith("tinymnist: error: could not download train-images-idx3-ubyte.gz")
    assert [lines[-1].count(m) for m in mirrors] == [1, 1], lines[-1]  # each mirror once, with its problem
    assert lines[-1].endswith("pass --data-dir FOLDER or set TINYMNIST_DATA=FOLDER"), lines[-1]  # what to do, last
    assert "Traceback" not in "\n".join(lines)


def test_fashion_downloads_into_its_own_cache(serve, monkeypatch, fashion_dir):
    monkeypatch.setenv("TINYMNIST_MIRRORS", serve(fashion_dir))
    monkeypatch.delenv("TINYMNIST_FASHION_DATA", raising=False)
    monkeypatch.setitem(data.DATASETS, "fashion-mnist", replace(data.DATASETS["fashion-mnist"], system=()))
    loaded = data.load(dataset="fashion-mnist")
    assert loaded.dataset == "fashion-mnist" and len(loaded.train_labels) == 60000
    assert data.cache_dir("fashion-mnist") != data.cache_dir() and not data.cache_dir().exists()
    names = sorted(p.name for p in data.cache_dir("fashion-mnist").iterdir())
    assert names == sorted(f"{n}.gz" for n in data.FILES)


def test_a_system_copy_is_used_when_nothing_names_a_folder(monkeypatch, mnist_dir, tmp_path):
    monkeypatch.setitem(data.DATASETS, "mnist", replace(data.DATASETS["mnist"], system=(str(mnist_dir),)))
    monkeypatch.delenv("TINYMNIST_DATA", raising=False)
    monkeypatch.setenv("TINYMNIST_MIRRORS", "http://127.0.0.1:9/")  # a download would fail
    assert data.find()["t10k-labels-idx1-ubyte"].parent == mnist_dir
    assert len(data.load().test_labels) == 10000 and not data.cache_dir().exists()
    assert data.find(tmp_path) is None  # a folder the user names is still the only one looked at


def test_a_mirror_serving_the_other_dataset_is_skipped(serve, monkeypatch, mnist_dir, fashion_dir, tmp_path):
    monkeypatch.setenv("TINYMNIST_MIRRORS", f"{serve(mnist_dir)},{serve(fashion_dir)}")
    path = download.download_file("t10k-labels-idx1-ubyte", tmp_path, "fashion-mnist")
    assert path.read_bytes() == (fashion_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()


def test_an_endless_answer_is_cut_off(serve, monkeypatch, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    (big / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(1 << 20))  # the file is 10,008 bytes decompressed
    monkeypatch.setenv("TINYMNIST_MIRRORS", serve(big))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(data.DataError, match="more than 75,544 bytes sent: not this file"):
        download.download_file("t10k-labels-idx1-ubyte", dest)
    assert list(dest.iterdir()) == []


def test_a_gzip_bomb_from_a_mirror_is_refused(serve, monkeypatch, tmp_path):
    bomb = tmp_path / "bomb"
    bomb.mkdir()
    header = (2049).to_bytes(4, "big") + (8 << 20).to_bytes(4, "big")
    (bomb / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + bytes(8 << 20), 9))
    monkeypatch.setenv("TINYMNIST_MIRRORS", serve(bomb))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(data.DataError, match="content larger than 10,008 bytes"):
        download.download_file("t10k-labels-idx1-ubyte", dest)
    assert list(dest.iterdir()) == []
