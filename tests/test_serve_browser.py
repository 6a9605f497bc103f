"""The draw-a-digit page in a real headless Chromium (Debian's `chromium`, driven by Playwright):
`tinymnist serve` runs as a subprocess on a free loopback port, digits are drawn on the canvas
with mouse events, and the page must show the right digit. Screenshots are left in pytest's
tmp_path (the path is printed).
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect, sync_playwright

from drawn_digits import STROKES, render

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server_url(trained_checkpoint) -> Iterator[str]:
    """`tinymnist serve` on a free port (--port 0); its first line of output gives the URL."""
    cmd = [sys.executable, "-m", "tinymnist", "serve", str(trained_checkpoint), "--port", "0"]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if "http://127.0.0.1:" not in line:
            server.kill()
            pytest.fail(f"tinymnist serve did not start: {line}{server.stderr.read()}")
        yield line.split(" at ")[1].split()[0]
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def page(server_url) -> Iterator[Page]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1180, "height": 860})
        page.goto(server_url)
        yield page
        browser.close()


def draw(page: Page, digit: int) -> None:
    """Move the mouse along the digit's strokes over the middle 70% of the canvas."""
    box = page.locator("#pad").bounding_box()
    for stroke in STROKES[digit]:
        points = [
            (box["x"] + box["width"] * (0.15 + 0.7 * x), box["y"] + box["height"] * (0.15 + 0.7 * y)) for x, y in stroke
        ]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=4)
        page.mouse.up()


def test_page_shows_the_model(page):
    expect(page.locator("#model")).to_have_text("Network: seed, 19,712 parameters.")


@pytest.mark.parametrize("digit", [3, 7, 0, 4])
def test_drawn_digit_is_read(page, digit, tmp_path):
    page.click("#clear")
    expect(page.locator("#digit")).to_have_text("?")
    draw(page, digit)
    expect(page.locator("#digit")).to_have_text(str(digit))
    expect(page.locator("#bars li.top")).to_contain_text(str(digit))
    expect(page.locator("#maps canvas")).to_have_count(16)
    shot = tmp_path / f"serve-{digit}.png"
    page.screenshot(path=shot, full_page=True)
    print(f"screenshot: {shot}")


def test_upload_button(page):
    six = {"name": "six.jpg", "mimeType": "image/jpeg", "buffer": render(6, fmt="JPEG")}
    page.set_input_files("#upload", files=[six])
    expect(page.locator("#digit")).to_have_text("6")
    text = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a digit"}
    page.set_input_files("#upload", files=[text])
    expect(page.locator("#error")).to_contain_text("notes.txt: not an image")
    expect(page.locator("#digit")).to_have_text("?")


def test_docs_render_offline(page, server_url):
    """Swagger UI renders the API from files the package serves; any request elsewhere fails the test."""
    elsewhere = []

    def local_only(route: Route) -> None:
        if route.request.url.startswith(server_url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    page.goto(f"{server_url}docs")
    expect(page.locator(".opblock-summary-path", has_text="/predict")).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/health")).to_be_visible()
    page.unroute("**/*")
    assert elsewhere == []


def test_page_and_docs_work_under_the_content_security_policy(page, server_url):
    """The server's Content-Security-Policy blocks nothing the page or the API docs need."""
    fresh = page.context.browser.new_page()
    blocked = []
    fresh.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    answer = fresh.goto(server_url)
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    draw(fresh, 7)
    expect(fresh.locator("#digit")).to_have_text("7")
    expect(fresh.locator("#maps canvas")).to_have_count(16)
    fresh.goto(f"{server_url}docs")
    expect(fresh.locator(".opblock-summary-path", has_text="/predict")).to_be_visible()
    fresh.locator(".opblock-summary-path", has_text="/predict").click()
    expect(fresh.locator(".opblock-body")).to_be_visible()
    fresh.close()
    assert blocked == []
