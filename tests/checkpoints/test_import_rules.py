"""The daemon's main process uses sniff / is_complete / parse_step without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import factories


def test_package_api_does_not_import_torch(tmp_path: Path) -> None:
    path = factories.save_sac_checkpoint(tmp_path / "sac_5.pt", step=5, hidden=8)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import alphawatch.checkpoints as c\n"
        "p = Path(sys.argv[1])\n"
        "assert c.sniff(p) == 'torch_zip'\n"
        "assert c.is_complete(p)\n"
        "assert c.parse_step(p.name) == 5\n"
        "heavy = [m for m in ('torch', 'safetensors', 'numpy', 'weightwatcher') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
