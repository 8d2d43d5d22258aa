"""Result documents built by hand to the schema in docs/CONTRACTS.md.

The report modules are tested against these, independently of the engine, so a report
bug and an engine bug never hide each other. Summaries are derived from the layers the
same way the contract defines them (mean over `ok` layers), so the figures are coherent.
"""

from __future__ import annotations

import statistics
from typing import Any

import pytest


def layer(name: str, shape: list[int], alpha: float | None, *, network: str = "actor",
          status: str = "ok", reason: str | None = None) -> dict[str, Any]:
    """One layer entry with every schema field; numbers follow from alpha and shape."""
    fitted = status == "ok"
    full_rank = min(shape)
    return {
        "name": name,
        "key": f"{network}.{name}",
        "shape": shape,
        "kind": "linear",
        "alpha": alpha if fitted else None,
        "stable_rank": full_rank / 4 if status != "failed" else None,
        "log_spectral_norm": 0.1 * full_rank ** 0.5 if status != "failed" else None,
        "D": 0.05 if fitted else None,
        "xmin": 1.5 if fitted else None,
        "num_pl_spikes": full_rank // 3 if fitted else None,
        "num_evals": full_rank,
        "status": status,
        "reason": reason,
    }


def network(name: str, alphas: list[float | None], dead: int = 3, hidden: int = 256,
            method: str = "activation") -> dict[str, Any]:
    """An MLP network: one layer per entry of `alphas` (None: a skipped output head)."""
    layers = []
    for i, a in enumerate(alphas):
        if a is None:
            layers.append(layer(f"{2 * i}.weight", [6, hidden], None, network=name,
                                status="skipped", reason="fewer than 8 eigenvalues (min_evals)"))
        else:
            layers.append(layer(f"{2 * i}.weight", [hidden, hidden], a, network=name))
    ok = [entry for entry in layers if entry["status"] == "ok"]
    ok_alphas = [entry["alpha"] for entry in ok]
    total = hidden * 2
    ratio = dead / total
    summary = {
        "alpha": statistics.fmean(ok_alphas) if ok_alphas else None,
        "alpha_std": statistics.pstdev(ok_alphas) if ok_alphas else None,
        "alpha_min": min(ok_alphas) if ok_alphas else None,
        "alpha_max": max(ok_alphas) if ok_alphas else None,
        "stable_rank_mean": statistics.fmean(e["stable_rank"] for e in ok) if ok else None,
        "stable_rank_utilization": statistics.fmean(e["stable_rank"] / min(e["shape"]) for e in ok)
        if ok else None,
        "log_spectral_norm_mean": statistics.fmean(e["log_spectral_norm"] for e in ok) if ok else None,
        "layers_analyzed": len(ok),
        "layers_skipped": sum(e["status"] == "skipped" for e in layers),
        "layers_failed": sum(e["status"] == "failed" for e in layers),
        "layers_trusted": len(ok),
        "alpha_min_trusted": min(ok_alphas) if ok_alphas else None,
        "health": _verdict(statistics.fmean(ok_alphas) if ok_alphas else None),
        "dead_neurons": {"method": method, "count": dead, "total": total, "ratio": ratio,
                         "status": "good" if ratio < 0.05 else "moderate",
                         "fallback_reason": None,
                         "layers": [{"name": "0", "count": dead, "total": hidden},
                                    {"name": "2", "count": 0, "total": hidden}]},
    }
    return {"summary": summary, "layers": layers}


def _verdict(alpha: float | None) -> str:
    if alpha is None:
        return "unknown"
    for bound, word in ((2, "overfit"), (2.5, "optimal"), (5, "good"), (6, "undertrained")):
        if alpha < bound:
            return word
    return "severely_undertrained"


def issue(network: str | None, code: str, message: str) -> dict[str, Any]:
    return {"network": network, "code": code, "message": message}


def checkpoint(path: str, step: int | None, actor: list[float | None],
               critic: list[float | None], issues: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"path": path, "step": step, "format": "torch_zip",
            "networks": {"actor": network("actor", actor), "critic_1": network("critic_1", critic)},
            "issues": issues or []}


def document(checkpoints: list[dict[str, Any]], failures: list[dict[str, Any]] | None = None,
             recommended: str | None = None, pattern: str = "insufficient_data") -> dict[str, Any]:
    """A full `analyze --json` document with the trend computed from the checkpoints."""
    nets = list(checkpoints[0]["networks"]) if checkpoints else []
    trend = {
        "order": [c["path"] for c in checkpoints],
        "steps": [c["step"] for c in checkpoints],
        "alpha": {n: [c["networks"][n]["summary"]["alpha"] for c in checkpoints] for n in nets},
        "pattern": pattern,
        "network": "actor" if nets else None,
        "recommended_checkpoint": recommended,
        "description": f"pattern {pattern} over {len(checkpoints)} checkpoints.",
    }
    return {"checkpoints": checkpoints, "failures": failures or [], "trend": trend}


@pytest.fixture
def single_doc() -> dict[str, Any]:
    ckpt = checkpoint("runs/sac/generation_1200.pt", 1200, [3.4, 2.8, None], [4.1, 5.3, None],
                      issues=[issue("actor", "alpha_variance", "high alpha variance across layers (std 2.1)"),
                              issue(None, "actor_critic_mismatch",
                                    "actor vs critic alpha mismatch (2.1 vs 4.7)")])
    return document([ckpt])


@pytest.fixture
def multi_doc() -> dict[str, Any]:
    ckpts = [
        checkpoint("runs/sac/generation_100.pt", 100, [4.5, 4.1, None], [5.5, 5.1, None]),
        checkpoint("runs/sac/generation_200.pt", 200, [2.6, 2.2, None], [3.5, 3.1, None]),
        checkpoint("runs/sac/generation_300.pt", 300, [1.9, 1.6, None], [2.8, 2.5, None]),
    ]
    failures = [{"path": "runs/sac/broken.pt", "reason": "truncated",
                 "message": "runs/sac/broken.pt ends early (still being written?)"}]
    return document(ckpts, failures, recommended="runs/sac/generation_200.pt", pattern="overtraining")
