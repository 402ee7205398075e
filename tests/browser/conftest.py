"""A headless Debian chromium driven by Selenium through the system chromedriver.

Missing browser or driver: the tests fail under CI (``.ci/run`` installs them) and are skipped
elsewhere, like the other external-tool tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,1024",
]


def _need(what: str, found: str | None, package: str) -> str:
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is required under CI: install the Debian package {package}")
        pytest.skip(f"{what} not installed (apt-get install {package})")
    return found


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A fresh headless chromium (own profile folder), closed after the test."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium = _need("chromium", shutil.which("chromium"), "chromium")
    driver_path = _need("chromedriver", shutil.which("chromedriver"), "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
