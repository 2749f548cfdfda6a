"""Where the real tester files live (../shared beside the project), and how tests skip without them."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
STDF_DIR = SHARED / "testdata" / "stdf"
MAPS_DIR = SHARED / "testdata" / "maps"


def shared_file(*parts: str) -> Path:
    """Path of a real test file under ../shared/testdata; skips the test when it is absent."""
    path = SHARED.joinpath("testdata", *parts)
    if not path.exists():
        pytest.skip(f"real test data not available: {path} (../shared is absent on this machine)")
    return path


requires_shared = pytest.mark.skipif(
    not (SHARED / "testdata").is_dir(),
    reason="real test data ../shared/testdata is absent on this machine",
)
