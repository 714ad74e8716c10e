"""A real headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, for looking at pages.

`open_page` loads a file as a person would, waits for the page to say its plots are drawn, and
returns what the browser saw: every plot's traces and drawn elements, the console messages, the
resources fetched, and a full-page screenshot. Without Chromium the helper raises with the install
command instead of letting tests skip (CI installs it), as the Prometheus helper does.
"""

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "install Debian's chromium and chromium-driver packages (apt-get install chromium chromium-driver)"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

PLOTS_JS = """
return Array.prototype.map.call(document.querySelectorAll('.unitcost-plot'), function (box) {
  var d = box.querySelector('.plotly-graph-div');
  var data = (d && d._fullData) || [];
  var points = 0;
  data.forEach(function (t) { points += Math.max((t.x || []).length, (t.y || []).length); });
  return {
    name: box.getAttribute('data-plot'),
    svg: !!(d && d.querySelector('.main-svg')),
    traces: data.length,
    points: points,
       drawn: d ? d.querySelectorAll('g.trace').length : 0,
    title: (d && d._fullLayout && d._fullLayout.title) ? d._fullLayout.title.text : null,
  };
});
"""


class BrowserMissing(RuntimeError):
    pass


@dataclass
class PageView:
    rendered_flag: int | None
    plots: list[dict]
    console: list[dict]
    resources: list[str]
    screenshot: Path


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        raise BrowserMissing(f"Chromium or its driver is not installed: {INSTALL_HINT}")
    return browser, driver


def open_page(page: Path, screenshot: Path, user_data_dir: Path, timeout: float = 60.0) -> PageView:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_page_load_timeout(timeout)
        driver.get(page.resolve().as_uri())
        deadline = time.monotonic() + timeout
        flag = None
        while time.monotonic() < deadline:
            flag = driver.execute_script("return window.unitcostPlotsRendered === undefined ? null : window.unitcostPlotsRendered;")
            if flag is not None and flag >= 0:
                break
            time.sleep(0.1)
        plots = driver.execute_script(PLOTS_JS)
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(function (e) { return e.name; });"
        )
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(1400, min(int(height) + 40, 8000))
        time.sleep(0.5)  # the responsive plots re-lay themselves out to the new width
        driver.save_screenshot(str(screenshot))
        console = driver.get_log("browser")
    finally:
        driver.quit()
    return PageView(rendered_flag=flag, plots=plots, console=console, resources=resources, screenshot=screenshot)
