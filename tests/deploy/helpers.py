"""Shared helpers for the deployment tests: repo paths, the dashboard's queries, the Dockerfile.

Plain functions (no pytest) so the unit tests and the end-to-end tests read the shipped
files the same way.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKER_CONFIG = REPO / "config" / "examples" / "docker.yaml"
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules" / "alphawatch.rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "tests" / "alphawatch.rules.test.yml"
GRAFANA = REPO / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "alphawatch.json"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER = GRAFANA / "provisioning" / "dashboards" / "alphawatch.yml"
K8S = DEPLOY / "k8s"

# The names the daemon exports (alphawatch.service.metrics.METRICS, the one list), with the
# series names a histogram and a counter expose.
def _series_names() -> frozenset[str]:
    from alphawatch.service.metrics import METRICS

    names: set[str] = set()
    for name, (kind, _labels, _doc) in METRICS.items():
        if kind == "histogram":
            names |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif kind == "counter":
            names.add(f"{name}_total" if not name.endswith("_total") else name)
        else:
            names.add(name)
    return frozenset(names)


METRIC_NAMES = _series_names()
METRIC_RE = re.compile(r"\balphawatch_[a-z_]+\b")

def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_yaml_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every PromQL target in the dashboard."""
    out = []
    for panel in iter_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            if target.get("expr"):
                out.append((panel["title"], target))
    return out


def variable_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """Template variable name -> its query string (e.g. `label_values(metric, label)`)."""
    out = {}
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        out[var["name"]] = query["query"] if isinstance(query, dict) else query
    return out


LABEL_VALUES_RE = re.compile(r"^label_values\((?:(?P<match>.+),\s*)?(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\)$")


def parse_label_values(query: str) -> tuple[str | None, str]:
    """`label_values(selector, label)` -> (selector, label); raises ValueError otherwise."""
    m = LABEL_VALUES_RE.match(query.strip())
    if not m:
        raise ValueError(f"not a label_values() query: {query!r}")
    return m.group("match"), m.group("label")


def substitute(expr: str, variables: dict[str, str], rate_interval: str = "1m",
               range_: str = "1h", interval: str = "15s") -> str:
    """Replace Grafana variables the way Grafana does before sending a query to Prometheus."""
    builtins = {"__rate_interval": rate_interval, "__range": range_, "__interval": interval}
    allvars = {**builtins, **variables}
    # longest names first so $network is not cut by a shorter $net
    for name in sorted(allvars, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", allvars[name]).replace("$" + name, allvars[name])
    if "$" in expr:
        raise ValueError(f"unsubstituted variable left in {expr!r}")
    return expr


def metric_names_in(text: str) -> set[str]:
    return set(METRIC_RE.findall(text))


# ---------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1].rstrip() + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """Instructions split per build stage (each list starts with its FROM)."""
    stages: list[list[tuple[str, str]]] = []
    for ins in dockerfile_instructions(text):
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _stage_name(stage: list[tuple[str, str]]) -> str | None:
    words = stage[0][1].split()
    return words[2].lower() if len(words) == 3 and words[1].upper() == "AS" else None


def stage_names(text: str) -> list[str | None]:
    """Each stage's name (`FROM image AS name`), in order."""
    return [_stage_name(stage) for stage in dockerfile_stages(text)]


def stage_lineage(text: str, target: str | None = None) -> list[tuple[str, str]]:
    """Everything that makes up a target stage (default: the last, the image's default target).

    A stage built `FROM` an earlier stage inherits its instructions (USER, ENV, WORKDIR, RUN ...),
    so these are the parent stages' instructions first, then the target's own.
    """
    stages = dockerfile_stages(text)
    by_name = {name: stage for stage in stages if (name := _stage_name(stage))}
    stage = by_name[target] if target else stages[-1]
    chain = [stage]
    while (parent := stage[0][1].split()[0].lower()) in by_name:
        stage = by_name[parent]
        chain.insert(0, stage)
    return [ins for st in chain for ins in st]


def arg_defaults(text: str) -> dict[str, str]:
    """ARG name -> default value, for every ARG with one (the last one wins, like Docker's scoping)."""
    out = {}
    for ins, args in dockerfile_instructions(text):
        if ins == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            out[name] = value
    return out


def exec_form(args: str) -> list[str]:
    """A JSON exec-form argument list (`["a", "b"]`); raises ValueError for shell form."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not exec form: {args!r}") from exc
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ValueError(f"not exec form: {args!r}")
    return value


def healthcheck_command(text: str) -> list[str]:
    """The final stage's HEALTHCHECK CMD as an argv list."""
    final = dockerfile_stages(text)[-1]
    args = [a for ins, a in final if ins == "HEALTHCHECK"]
    if len(args) != 1:
        raise ValueError("the final stage needs exactly one HEALTHCHECK")
    options, sep, cmd = args[0].partition("CMD ")
    if not sep:
        raise ValueError("HEALTHCHECK without CMD")
    return exec_form(cmd.strip())


def which(name: str, *extra_dirs: Path) -> str | None:
    for d in extra_dirs:
        candidate = d / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)
