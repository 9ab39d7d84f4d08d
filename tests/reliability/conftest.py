"""Fixtures for the data and storage reliability tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from data_support import DiskGcsEmulator


@pytest.fixture
def disk_emulator(tmp_path: Path) -> Iterator[DiskGcsEmulator]:
    """A private, stoppable GCS emulator with on-disk objects."""
    emu = DiskGcsEmulator(tmp_path / "emulator")
    emu.data_dir.mkdir()
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()
