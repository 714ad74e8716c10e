"""A real Prometheus for tests: samples backfilled from OpenMetrics text, served on 127.0.0.1.

`start_prometheus` writes the text to a file, turns it into TSDB blocks with
`promtool tsdb create-blocks-from openmetrics`, and starts `prometheus` on that data dir; blocks
present in the data dir before startup are loaded as they are. The retention is long
(`RETENTION`) so that old timestamps, which keep test data well away from "now", are never
deleted. Needs Debian's `prometheus` package (it provides both binaries); without it the helper
raises instead of letting tests skip.
"""

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import requests

RETENTION = "100y"
# promtool's default 2-hour blocks load just as well, but a few days of samples become dozens of
# blocks for the server to open and compact; longer blocks keep it to a handful
MAX_BLOCK_DURATION = "744h"
CONFIG = "global:\n  scrape_interval: 1h\n"  # no scrape jobs: the server only holds what was backfilled
START_ATTEMPTS = 3
INSTALL_HINT = (
    "install Debian's prometheus package (apt-get install prometheus), which provides prometheus and promtool"
)


class PrometheusServerError(RuntimeError):
    """The test Prometheus could not be set up: a binary is missing, promtool rejected the samples,
    or the server would not start."""


@dataclass
class PrometheusServer:
    """A running Prometheus: `url` is its base URL (http://127.0.0.1:<port>)."""

    url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); safe to call more than once."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "PrometheusServer":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def binary(name: str) -> str:
    """The path of a Prometheus binary (`prometheus`, `promtool`); raises PrometheusServerError
    saying what to install when it is missing."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        raise PrometheusServerError(f"{name} is not installed; these tests run a real Prometheus: {INSTALL_HINT}")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (start_prometheus retries if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def backfill(openmetrics: str, workdir: Path) -> Path:
    """TSDB blocks of the OpenMetrics text (`# EOF` is added when missing) in `workdir`/data."""
    text = openmetrics if openmetrics.rstrip().endswith("# EOF") else openmetrics.rstrip("\n") + "\n# EOF\n"
    source = workdir / "samples.om.txt"
    source.write_text(text)
    data_dir = workdir / "data"
    done = subprocess.run(
        [binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", "--quiet",
         f"--max-block-duration={MAX_BLOCK_DURATION}", str(source), str(data_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        reason = done.stderr.strip() or done.stdout.strip()
        raise PrometheusServerError(f"promtool could not backfill {source}: {reason}")
    return data_dir


def start_prometheus(workdir: Path, openmetrics: str, *, startup_timeout: float = 30.0) -> PrometheusServer:
    """A Prometheus serving the samples of `openmetrics`, ready to query; stop it with `.stop()` or
    use it as a context manager. `workdir` (a fresh temporary directory) holds the data and the log."""
    server_binary = binary("prometheus")
    data_dir = backfill(openmetrics, workdir)
    config = workdir / "prometheus.yml"
    config.write_text(CONFIG)
    log_path = workdir / "prometheus.log"
    for _ in range(START_ATTEMPTS):
        port = free_port()
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [server_binary, f"--config.file={config}", f"--storage.tsdb.path={data_dir}",
                 f"--storage.tsdb.retention.time={RETENTION}", f"--web.listen-address=127.0.0.1:{port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        server = PrometheusServer(f"http://127.0.0.1:{port}", data_dir, log_path, process)
        try:
            outcome = _wait_ready(server, startup_timeout)
        except BaseException:  # e.g. Ctrl-C while waiting: never leave the server running
            server.stop()
            raise
        if outcome == "ready":
            return server
        server.stop()
        if "address already in use" not in log_path.read_text():
            break  # a failure other than losing the port to another process: retrying will not help
    tail = "\n".join(log_path.read_text().splitlines()[-20:])
    what = "exited" if outcome == "exited" else f"did not become ready within {startup_timeout:g}s"
    raise PrometheusServerError(f"prometheus {what}; its log ({log_path}) ends:\n{tail}")


def _wait_ready(server: PrometheusServer, timeout: float) -> str:
    """The outcome of waiting: "ready" once /-/ready answers 200, "exited" if the process ends
    first, else "timeout"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return "exited"
        try:
            if requests.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return "ready"
        except requests.ConnectionError:
            pass  # not listening yet
        time.sleep(0.05)
    return "timeout"
