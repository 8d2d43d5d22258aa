"""What declaring the configuration with a library would cost the daemon's main process.

Run:  .venv/bin/python bench/config_import.py [--repeat 9] [--before ddd4364]
      (pydantic and msgspec must be installed in the venv to measure those variants:
       `.venv/bin/pip install msgspec`; pydantic comes with the test extras)

Each variant is imported in a fresh interpreter, which then loads config/alphawatch.yaml.
Printed per variant, median over --repeat runs: wall and CPU time of the import (class
construction included) and of the load, beyond a first import of what every variant
shares (PyYAML, alphawatch.analysis.options, alphawatch.errors); peak RSS (ru_maxrss) of
the process and what it adds to the baseline; modules added. CPU time is the steadier
figure on a busy machine. Variants:

- before:   alphawatch.config + config_schema at git revision --before (hand-written
            parsers, a rename map), copied to a temporary package;
- stdlib:   alphawatch.config in this tree (dataclass fields carrying the declaration);
- pydantic: bench/config_variants/pydantic_config.py (same keys and bounds, no env support);
- msgspec:  bench/config_variants/msgspec_config.py (same keys and bounds, no env support);
- daemon:   what `alphawatch run` imports before it starts (cli, commands.run, the config,
            service.daemon), for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS_DIR = ROOT / "bench" / "config_variants"
SHIPPED = ROOT / "config" / "alphawatch.yaml"

_PROBE = """
import json, resource, sys, time
from pathlib import Path
sys.path[:0] = {paths!r}
import yaml, alphawatch.analysis.options, alphawatch.errors  # shared by every variant
t1, c1 = time.perf_counter(), time.process_time()
{imports}
t2, c2 = time.perf_counter(), time.process_time()
{load}
t3, c3 = time.perf_counter(), time.process_time()
print(json.dumps({{"import_ms": (t2 - t1) * 1e3, "import_cpu_ms": (c2 - c1) * 1e3,
                  "load_ms": (t3 - t2) * 1e3, "load_cpu_ms": (c3 - c2) * 1e3,
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "modules": len(sys.modules), "torch": "torch" in sys.modules}}))
"""

def _variants() -> dict[str, tuple[str, str]]:
    """name -> (import statements, the load)."""
    shipped = f"Path({str(SHIPPED)!r})"
    load_config = f"load_config({shipped}, env={{}})"
    return {
        "baseline": ("pass", "pass"),
        "before": ("from aw_before.config import load_config", load_config),
        "stdlib": ("from alphawatch.config import load_config", load_config),
        "pydantic": ("import pydantic_config", f"pydantic_config.load({shipped})"),
        "msgspec": ("import msgspec_config", f"msgspec_config.load({shipped})"),
        "daemon": ("import alphawatch.cli, alphawatch.commands.run, alphawatch.service.daemon\n"
                   "from alphawatch.config import load_config", load_config),
    }


def _copy_before(revision: str, into: Path) -> None:
    """alphawatch.config + config_schema at `revision`, as the package aw_before."""
    package = into / "aw_before"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("config.py", "config_schema.py"):
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:daemon/alphawatch/{name}"],
                              capture_output=True, text=True, check=True).stdout
        (package / name).write_text(text.replace("alphawatch.config_schema", "aw_before.config_schema"))


def _measure(imports: str, load: str, paths: list[str], repeat: int) -> dict[str, float] | str:
    code = _PROBE.format(paths=paths, imports=imports, load=load)
    # bytecode caches written and used, as in an installed daemon; a first, uncounted run writes them
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    runs = []
    for _ in range(repeat + 1):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
        if proc.returncode != 0:
            return proc.stderr.strip().splitlines()[-1]
        runs.append(json.loads(proc.stdout))
    runs = runs[1:]
    keys = ("import_ms", "import_cpu_ms", "load_ms", "load_cpu_ms", "rss_kb", "modules")
    return {k: statistics.median(r[k] for r in runs) for k in keys} | {"torch": any(r["torch"] for r in runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--before", default="ddd4364", help="git revision of the hand-written parsers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _copy_before(args.before, Path(tmp))
        paths = [tmp, str(VARIANTS_DIR)]
        results = {name: _measure(imports, load, paths, args.repeat)
                   for name, (imports, load) in _variants().items()}
    base = results["baseline"]
    print(f"median of {args.repeat} fresh interpreters; Python {sys.version.split()[0]}")
    print("import/load: wall and CPU milliseconds beyond the shared imports; RSS: peak of the process")
    print(f"{'variant':10} {'import ms':>10} {'(cpu)':>7} {'load ms':>8} {'(cpu)':>7} {'RSS MiB':>8} "
          f"{'+RSS MiB':>8} {'+modules':>8}  torch")
    for name, r in results.items():
        if isinstance(r, str):
            print(f"{name:10} not measured: {r}")
            continue
        assert isinstance(base, dict)
        added_mib = (r["rss_kb"] - base["rss_kb"]) / 1024
        print(f"{name:10} {r['import_ms']:10.1f} {r['import_cpu_ms']:7.1f} {r['load_ms']:8.1f} "
              f"{r['load_cpu_ms']:7.1f} {r['rss_kb'] / 1024:8.1f} {added_mib:8.1f} "
              f"{r['modules'] - base['modules']:8.0f}  {r['torch']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
