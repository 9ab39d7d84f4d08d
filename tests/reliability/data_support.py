"""Support for the data and storage reliability tests: small valid files, store snapshots,
a stoppable on-disk GCS emulator. (A plain module: test directories have no __init__.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ticket_urgency.storage import Storage
from ticket_urgency.testing import GcsEmulator, wait_for_port

HEADER = b"title,description,source,customer_tier,label_urgency\n"
REFERENCE_CSV = HEADER + (
    b"Checkout down,Payment page returns 500 for all users,phone,Platinum,critical\n"
    b"Password reset,How do I reset my password?,email,Free,low\n"
    b"Slow dashboard,Dashboard takes 20 s to load,web,Gold,medium\n"
    b"Invoice question,Wrong VAT on the last invoice,chat,Silver,low\n"
    b"API errors,Intermittent 502 from /v2/orders,api,Gold,high\n"
)
NEW_CSV = (
    b"ticket_id,title,description,source,customer_tier,label_urgency,created_at\n"
    b"n-1,Login loop,SSO redirects forever,web,Gold,high,2025-03-01T10:00:00Z\n"
    b"n-2,Export broken,CSV export is empty,email,Bronze,,2025-03-01T11:00:00Z\n"
    b"n-3,Billing,Charged twice this month,chat,Silver,medium,2025-03-02T09:30:00Z\n"
)


def snapshot_tree(root: Path) -> dict[str, bytes]:
    """Return every file below ``root`` (hidden ones too) mapped to its bytes."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def snapshot_storage(storage: Storage) -> dict[str, bytes]:
    """Return every object of a storage mapped to its bytes."""
    return {key: storage.read_bytes(key) for key in storage.list()}


class DiskGcsEmulator(GcsEmulator):
    """A gcp-storage-emulator that keeps its objects on disk, so it can be stopped and restarted
    on the same port with its data intact (the session emulator runs in memory)."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.data_dir = data_dir

    def start(self) -> DiskGcsEmulator:
        """Start (or restart) the emulator on its port with its on-disk data."""
        exe = Path(sys.executable).with_name("gcp-storage-emulator")
        env = {**os.environ, "STORAGE_BASE": str(self.data_dir)}
        self.proc = subprocess.Popen(
            [str(exe), "start", "--host", "127.0.0.1", "--port", str(self.port), "-q"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        """Stop the emulator abruptly (SIGKILL) and wait until its port is closed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        time.sleep(0.05)
