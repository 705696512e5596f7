"""`enhance-faces serve` in a real browser (headless Chromium through selenium): browse, filter, open a track,
upload a probe photo and see its person's track first; a hostile camera name stays text; `../` is refused;
bound to a non-local address it refuses to start without a token, and with one refuses requests without it."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from support.browser import chrome, console_errors
from support.paths import HEADS, MODELS, ROOT, require, run_cli
from support.rtsp import free_port

pytestmark = pytest.mark.slow  # end-to-end runs of real video and servers: the full suite, not the fast lane

pytest.importorskip("starlette", reason="needs the catalog extra (pip install 'enhance-faces[catalog]')")

HOSTILE = "<img src=x onerror=alert(1)>vr5"
ENV = {"ENHANCE_MODELS": str(MODELS)}


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> tuple[Path, Path]:
    """A catalogue of three talking heads' second halves at 32 px (one under a hostile name), and a probe
    photo from vr3's first half."""
    require(*(HEADS / f"{c}.mp4" for c in ("d0", "vr3", "vr5")), MODELS)
    import cv2

    sys.path.insert(0, str(ROOT / "benchmarks" / "catalog"))
    import retrieval

    from pipeline.catalog.embed import FaceEmbedder
    from pipeline.core.config import load_config

    work = tmp_path_factory.mktemp("web")
    embedder = FaceEmbedder(load_config(None, []), MODELS)
    seconds, heights, rates = {}, {}, {}
    for clip, name in (("d0", "d0"), ("vr3", "vr3"), ("vr5", HOSTILE)):
        first, seconds[name] = retrieval.halves(HEADS / f"{clip}.mp4")
        heights[name] = retrieval.face_height(seconds[name], embedder)
        rates[name] = retrieval.video_rate(HEADS / f"{clip}.mp4")
        if clip == "vr3":
            probe = work / "probe.jpg"
            cv2.imwrite(str(probe), first[len(first) // 2])
    url = retrieval.build_catalog(seconds, heights, rates, 32, work, 40)
    return Path(url), probe


class Server:
    def __init__(self, catalog: Path, host: str = "127.0.0.1", token: str | None = None) -> None:
        self.port = free_port()
        env = {**os.environ, **ENV, "PYTHONUNBUFFERED": "1"}
        env.pop("ENHANCE_SERVE_TOKEN", None)
        if token:
            env["ENHANCE_SERVE_TOKEN"] = token
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "serve", "--catalog", str(catalog),
                                      "--host", host, "--port", str(self.port)], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + "/style.css", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # up, and asking for its token
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read()
                time.sleep(0.2)
        raise AssertionError("the server did not start")

    def raw(self, path: str, headers: dict | None = None) -> tuple[int, bytes]:
        """A request with the path exactly as written (no client-side clean-up of `../`)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def submit(drv, button: str) -> None:
    """Click a form's button and wait until the page it loads has replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    page = drv.find_element(By.TAG_NAME, "html")
    drv.find_element(By.ID, button).click()
    WebDriverWait(drv, 30).until(ec.staleness_of(page))


def test_browse_filter_open_search_in_chromium(gallery, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    catalog, probe = gallery
    server = Server(catalog)
    drv = chrome(tmp_path)
    try:
        drv.get(server.base + "/")
        cams = [a.text for a in drv.find_elements(By.CSS_SELECTOR, "#cameras a")]
        assert sorted(cams) == sorted(["d0", "vr3", HOSTILE])  # the hostile name is shown as text
        assert drv.execute_script("return document.images.length") == 0  # …and made no element
        drv.find_element(By.LINK_TEXT, "vr3").click()
        assert drv.find_elements(By.CSS_SELECTOR, "#tracks a.track")
        drv.find_element(By.NAME, "since").send_keys("2999-01-01T00:00")
        submit(drv, "filter")
        assert not drv.find_elements(By.CSS_SELECTOR, "#tracks a.track") and "No tracks in that span" in drv.page_source
        drv.find_element(By.NAME, "since").clear()
        submit(drv, "filter")
        drv.find_elements(By.CSS_SELECTOR, "#tracks a.track")[0].click()
        assert "AI-enhanced" in drv.page_source
        WebDriverWait(drv, 20).until(lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)"))
        images = drv.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
        assert images and all(w == 128 for w in images)  # camera crops and enhanced tiles, served
        drv.find_element(By.ID, "more").click()
        assert drv.find_elements(By.CSS_SELECTOR, "#results a.hit")

        drv.get(server.base + "/search")
        drv.find_element(By.ID, "photo").send_keys(str(probe))
        drv.find_element(By.ID, "go").click()
        WebDriverWait(drv, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results td.camera"))
        assert drv.find_elements(By.CSS_SELECTOR, "#results td.camera")[0].text == "vr3"
        assert drv.find_element(By.CSS_SELECTOR, "#results").text.count(HOSTILE) == 1
        assert console_errors(drv) == []  # nothing the CSP had to block

        status, body = server.raw("/files/1/../../../../etc/passwd")
        assert status == 404 and b"root:" not in body
        status, body = server.raw("/files/1/%2e%2e/%2e%2e/%2e%2e/etc/passwd")
        assert status == 404 and b"root:" not in body
        drv.get(server.base + "/files/1/..%2f..%2f..%2fetc%2fpasswd")
        assert "root:" not in drv.page_source
        status, _ = server.raw("/")
        assert status == 200
    finally:
        drv.quit()
        server.close()

    import sqlalchemy as sa

    from pipeline.catalog import db, schema

    eng = db.engine(str(catalog))
    with eng.connect() as conn:
        rows = conn.execute(sa.select(schema.audit.c.who, schema.audit.c.kind)).all()
    assert ("web:127.0.0.1", "face") in rows and ("web:127.0.0.1", "track") in rows
    eng.dispose()


def test_a_non_local_bind_needs_a_token(gallery, tmp_path):
    catalog, _ = gallery
    refused = run_cli("serve", "--catalog", str(catalog), "--host", "0.0.0.0", "--port", str(free_port()), env=ENV)
    assert refused.returncode == 2 and "token" in refused.stderr and refused.stderr.count("\n") == 1

    token = "t0ken-" + os.urandom(12).hex()
    server = Server(catalog, host="0.0.0.0", token=token)
    drv = chrome(tmp_path)
    try:
        assert server.raw("/")[0] == 401
        assert server.raw("/track/1")[0] == 401
        assert server.raw("/", {"Authorization": "Bearer wrong-token-123456"})[0] == 401
        assert server.raw("/", {"Authorization": f"Bearer {token}"})[0] == 200
        drv.get(server.base + "/")
        assert "token is required" in drv.page_source
        drv.get(server.base + f"/?token={token}")  # once; then a cookie, and the token leaves the address
        assert "token" not in drv.current_url and "Cameras" in drv.page_source
        drv.get(server.base + "/search")
        assert "Search by face" in drv.page_source
    finally:
        drv.quit()
        server.close()
