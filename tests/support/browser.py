"""Headless Chromium through chromedriver (selenium), for the pages tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def chrome(tmp: Path):
    """Headless Debian Chromium through chromedriver (selenium); skips when either is missing."""
    pytest.importorskip("selenium", reason="selenium not installed (test extra)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    profile = tmp / "chrome-profile"
    profile.mkdir(parents=True, exist_ok=True)
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={profile}", "--window-size=1300,1800"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def console_errors(drv) -> list[dict]:
    return [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
