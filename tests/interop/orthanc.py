"""Debian's Orthanc as a real peer: a throwaway server with its own configuration, storage,
HTTP port and DICOM port, started and stopped by the tests and the benchmarks.

The configuration is Debian's default (``/etc/orthanc/orthanc.json`` differs from Orthanc's
built-in defaults only in names and paths) plus what a test needs: its own folders and ports,
no authentication, the DICOMweb plugin, and the peers it may send to. ``TCP_NODELAY=1`` is set
in its environment: DCMTK, which Orthanc's DICOM server is built on, reads it and turns off
Nagle's algorithm, without which every DIMSE exchange waits ~40 ms (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BINARY = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN_PATHS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so.1.7",
)
AE_TITLE = "ORTHANC_TEST"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary() -> str | None:
    """The Orthanc binary, if installed."""
    return shutil.which("Orthanc") or (BINARY if os.access(BINARY, os.X_OK) else None)


def dicomweb_plugin() -> str | None:
    return next((p for p in DICOMWEB_PLUGIN_PATHS if os.path.exists(p)), None)


def install() -> None:
    """Install Debian's orthanc and orthanc-dicomweb with apt-get when running as root."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
    subprocess.run(
        [
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "orthanc",
            "orthanc-dicomweb",
        ],
        env=env,
        check=False,
        capture_output=True,
        timeout=600,
    )


@dataclass
class Orthanc:
    """A running Orthanc: ``http`` is its REST root, ``dicom_port`` its DIMSE port."""

    directory: Path
    http_port: int
    dicom_port: int
    process: subprocess.Popen
    ae_title: str = AE_TITLE
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        # No gzip: Orthanc compresses DICOM for a client that offers it (slow, and not what
        # a DICOMweb viewer asks for).
        self.client = httpx.Client(
            base_url=self.http, timeout=120, headers={"Accept-Encoding": "identity"}
        )

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.http}/dicom-web"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.get(path, **kwargs)
        response.raise_for_status()
        return response

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.post(path, **kwargs)
        response.raise_for_status()
        return response

    def upload(self, raw: bytes) -> dict[str, Any]:
        """Store one Part 10 object through the REST API."""
        return self.post("/instances", content=raw).json()

    def find_instance(self, sop_instance_uid: str) -> str | None:
        """Orthanc's identifier of an instance, or None."""
        found = self.post(
            "/tools/lookup", content=sop_instance_uid, headers={"Content-Type": "text/plain"}
        ).json()
        return next((item["ID"] for item in found if item["Type"] == "Instance"), None)

    def delete_everything(self) -> None:
        for patient in self.get("/patients").json():
            self.client.delete(f"/patients/{patient}").raise_for_status()

    def add_modality(self, name: str, ae_title: str, port: int, host: str = "127.0.0.1") -> None:
        """Register (or update) a DICOM peer that Orthanc may send to and accept from."""
        self.client.put(
            f"/modalities/{name}", json={"AET": ae_title, "Host": host, "Port": port}
        ).raise_for_status()

    def peak_rss_kib(self) -> int:
        return peak_rss_kib(self.process.pid)

    def version(self) -> str:
        return str(self.get("/system").json().get("Version", "?"))

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def peak_rss_kib(pid: int, field: str = "VmHWM") -> int:
    """VmHWM (peak resident set size) of a process, or another /proc status field, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def start(
    directory: Path,
    *,
    modalities: dict[str, tuple[str, str, int]] | None = None,
    nodelay: bool = True,
    extra: dict[str, Any] | None = None,
    timeout: float = 30.0,
) -> Orthanc:
    """Start Orthanc with a configuration written into ``directory``.

    ``modalities`` maps a name to (AE title, host, port). Raises RuntimeError if it does not
    answer within ``timeout`` seconds.
    """
    executable = binary()
    plugin = dicomweb_plugin()
    if executable is None or plugin is None:
        raise RuntimeError("Orthanc or its DICOMweb plugin is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config: dict[str, Any] = {
        "Name": "HuizhenTestPeer",
        "StorageDirectory": str(directory / "storage"),
        "IndexDirectory": str(directory / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": AE_TITLE,
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        "HttpTimeout": 120,
        "TcpNoDelay": True,  # the HTTP server's sockets; DIMSE reads TCP_NODELAY below
        "KeepAlive": True,
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "Ssl": False},
        "DicomModalities": {
            name: [aet, host, port] for name, (aet, host, port) in (modalities or {}).items()
        },
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomCheckCalledAet": False,
        "SaveJobs": False,
        "StableAge": 1,
    }
    config.update(extra or {})
    path = directory / "orthanc.json"
    path.write_text(json.dumps(config, indent=2))
    env = {**os.environ}
    if nodelay:
        env["TCP_NODELAY"] = "1"
    else:
        env.pop("TCP_NODELAY", None)
    log = (directory / "orthanc.log").open("wb")
    process = subprocess.Popen(
        [executable, f"--logdir={directory}", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=directory,
    )
    log.close()
    server = Orthanc(directory, http_port, dicom_port, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if server.client.get("/system", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in directory.glob("*.log"))
    raise RuntimeError(f"Orthanc did not start (exit {process.returncode}):\n{logs}")
