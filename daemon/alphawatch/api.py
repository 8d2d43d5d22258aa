"""Python API, shaped like the original guide's `NetworkHealthAnalyzer`:

    from alphawatch import NetworkHealthAnalyzer
    a = NetworkHealthAnalyzer("checkpoints/generation_1200.pt")
    a.load_checkpoint()                        # -> ["actor", "critic_1", ...]
    r = a.analyze_all_networks(["actor"])      # -> {"actor": NetworkResult}
    r["actor"]["summary"]["alpha"]

It calls the same loader, engine and report modules as `alphawatch analyze` and returns
the same result schema (docs/CONTRACTS.md). torch is imported on first use, not when
`alphawatch` is imported. A refused file raises `alphawatch.errors.CheckpointError`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from alphawatch.analysis.options import AnalysisOptions
from alphawatch.results import CheckpointResult, Document, NetworkResult

if TYPE_CHECKING:
    from alphawatch.checkpoints import Checkpoint

__all__ = ["NetworkHealthAnalyzer"]


class NetworkHealthAnalyzer:
    """Analyze the networks of one checkpoint; results accumulate in `.results`."""

    def __init__(self, path: str | os.PathLike[str], options: AnalysisOptions | None = None) -> None:
        self.path = Path(path)
        self.options = options if options is not None else AnalysisOptions()
        self.checkpoint: Checkpoint | None = None
        self._results: dict[str, NetworkResult] = {}

    def load_checkpoint(self) -> list[str]:
        """Load the file safely (weights only) and return the network names found in it."""
        from alphawatch.checkpoints import load

        patterns = dict(self.options.network_patterns) or None
        self.checkpoint = load(self.path, network_patterns=patterns)
        self._results = {}
        return list(self.checkpoint.networks)

    @property
    def networks(self) -> list[str]:
        """Network names in the checkpoint (loads it on first use)."""
        return list(self._loaded().networks)

    @property
    def results(self) -> dict[str, NetworkResult]:
        """Every NetworkResult analyzed so far, by network name."""
        return dict(self._results)

    def analyze_network(self, name: str) -> NetworkResult:
        """Analyze one network; returns its NetworkResult (`["summary"]`, `["layers"]`)."""
        return self.analyze_all_networks([name])[name]

    def analyze_all_networks(self, networks: Iterable[str] | None = None) -> dict[str, NetworkResult]:
        """Analyze the named networks (all when None); returns `{name: NetworkResult}`."""
        from alphawatch.analysis import analyze_checkpoint

        ckpt = self._loaded()
        wanted = list(dict.fromkeys(networks)) if networks is not None else list(ckpt.networks)
        unknown = [n for n in wanted if n not in ckpt.networks]
        if unknown:
            raise KeyError(f"no network {', '.join(map(repr, unknown))} in {self.path}; "
                           f"it has: {', '.join(ckpt.networks)}")
        if not wanted:  # an empty selection: the engine would read () as "every network"
            return {}
        options = dataclasses.replace(self.options, networks=tuple(wanted))
        result = analyze_checkpoint(ckpt, options)
        self._results.update(result["networks"])
        return {name: result["networks"][name] for name in wanted}

    def checkpoint_result(self) -> CheckpointResult:
        """The CheckpointResult for what has been analyzed (all networks if nothing yet)."""
        from alphawatch.analysis.health import checkpoint_issues

        if not self._results:
            self.analyze_all_networks()
        ckpt = self._loaded()
        return {"path": str(ckpt.path), "step": ckpt.step, "format": ckpt.format,
                "networks": dict(self._results), "issues": checkpoint_issues(self._results)}

    def document(self) -> Document:
        """The `alphawatch analyze --json` document for this one checkpoint."""
        from alphawatch.analysis.trend import trend
        from alphawatch.report.json_report import build_document

        result = self.checkpoint_result()
        return build_document([result], [], trend([result], threshold=self.options.alpha_threshold))

    def report_text(self) -> str:
        """The console health report (as `alphawatch analyze` prints it)."""
        from alphawatch.report import text

        return text.render(self.document(), self.options.alpha_threshold)

    def print_report(self) -> None:
        """Print the console health report."""
        print(self.report_text(), end="")

    def generate_report(self, output_dir: str | os.PathLike[str], *, plots: bool = True) -> list[Path]:
        """Write the text, CSV, JSON and (with `plots`) PNG reports; return the paths."""
        from alphawatch.report import write_reports

        return write_reports(self.document(), Path(output_dir),
                             threshold=self.options.alpha_threshold, plots=plots)

    def _loaded(self) -> Checkpoint:
        if self.checkpoint is None:
            self.load_checkpoint()
        assert self.checkpoint is not None
        return self.checkpoint
