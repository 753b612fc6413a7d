"""`import refsae.oracle` leaves torch unimported (NOT-4)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_oracle_does_not_import_torch() -> None:
    code = "import sys, refsae.oracle; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", result.stdout + result.stderr


def test_the_subprocess_check_would_see_torch_if_it_were_imported() -> None:
    code = "import sys, refsae.torch; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
