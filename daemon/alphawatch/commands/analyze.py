"""`alphawatch analyze`: analyze checkpoints once, print the health report, write files.

The flags are those users of the original `analyze_network_health.py` script know.
Every checkpoint is analyzed even when others fail; a refused or failed file costs one
line on stderr (never a traceback) and makes the exit code 3. So does a `--networks` name
that none of the analyzed checkpoints has (a typo must not pass as "analyzed").
Each file goes through `alphawatch.pipeline.analyze_file`, as in the daemon, and the
results are put in training order by `alphawatch.ordering`, as in the daemon.

Exit codes: 0 all analyzed; 2 usage or configuration error (bad flags, nothing to
analyze, an output location that cannot be created); 3 one or more checkpoints refused
or failed (the rest are still analyzed and reported).

torch, weightwatcher and matplotlib are imported inside `main()` only (via the
checkpoints/analysis/report modules), so `alphawatch --help` stays instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from alphawatch.analysis.options import ACTIVATIONS, DEAD_NEURON_METHODS, AnalysisOptions
from alphawatch.checkpoints.sniff import CHECKPOINT_SUFFIXES
from alphawatch.config import DEFAULT_IGNORE
from alphawatch.results import CheckpointResult, Document, Failure

EXIT_OK, EXIT_USAGE, EXIT_FAILED = 0, 2, 3
PROG = "alphawatch analyze"


class UsageError(Exception):
    """A problem with what the user asked for: exit code 2, one line."""


def _sample_count(text: str) -> int:
    """A variance over one sample is 0: with N=1 every unit would read as dead."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2 (a variance needs two samples), got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `alphawatch analyze` (called by alphawatch.cli)."""
    parser.add_argument("paths", nargs="*", metavar="CKPT",
                        help="checkpoint files or folders (same as --checkpoint)")
    parser.add_argument("--checkpoint", "-c", dest="checkpoints", nargs="+", action="extend",
                        default=[], metavar="CKPT",
                        help="checkpoint file(s) or folder(s); a folder that is not itself a "
                             "checkpoint (HF/DCP) is expanded to the checkpoints directly inside it")
    parser.add_argument("--output-dir", "-o", type=Path, metavar="DIR",
                        help="write network_health_report.txt, <network>_details.csv, "
                             "<network>_health_metrics.png and results.json here")
    parser.add_argument("--json", dest="json_path", metavar="PATH",
                        help="write the results as JSON to PATH ('-' for stdout; the console "
                             "summary then goes to stderr)")
    parser.add_argument("--networks", nargs="+", metavar="NAME",
                        help="analyze only these networks (e.g. actor critic_1)")
    parser.add_argument("--dead-neuron-method", choices=DEAD_NEURON_METHODS,
                        help="activation (default): run sample inputs through the rebuilt "
                             "network; weight: incoming-weight norms")
    parser.add_argument("--dead-neuron-samples", type=_sample_count, metavar="N",
                        help="sample inputs for the activation method (default 1000)")
    parser.add_argument("--activation", choices=ACTIVATIONS,
                        help="activation used to rebuild Linear chains (default relu)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="read defaults from the `analysis:` section of a daemon config")
    parser.add_argument("--no-plots", action="store_true",
                        help="with --output-dir, skip the PNG plots (faster)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no console summary, no progress bar (errors are still printed)")


def build_options(args: argparse.Namespace) -> AnalysisOptions:
    """Defaults < the config file's `analysis:` section < command-line flags."""
    options = AnalysisOptions()
    if args.config is not None:
        options = _config_options(args.config)
    changes: dict[str, Any] = {}
    if args.networks:
        changes["networks"] = tuple(dict.fromkeys(args.networks))
    for flag in ("dead_neuron_method", "dead_neuron_samples", "activation"):
        if getattr(args, flag) is not None:
            changes[flag] = getattr(args, flag)
    return dataclasses.replace(options, **changes)


def _config_options(path: Path) -> AnalysisOptions:
    from alphawatch.config import load_config
    from alphawatch.errors import ConfigError

    if not path.is_file():
        raise UsageError(f"config file {path} does not exist")
    try:
        return load_config(path).analysis
    except ConfigError as exc:
        raise UsageError(f"{path}: {exc}") from None


def _ignored(name: str) -> bool:
    """The producers' temp names the daemon ignores too (`watch.ignore`'s default)."""
    return any(fnmatch.fnmatch(name, pattern) for pattern in DEFAULT_IGNORE)


def expand(
    paths: Sequence[str], sniff: Callable[[Path], str]
) -> tuple[list[str], list[Failure]]:
    """Inputs -> (checkpoint paths in the order given, failures for folders holding none).

    A folder that is one checkpoint (`checkpoints.is_checkpoint_folder`: Hugging Face, DCP,
    a step-named folder) is one checkpoint. Any other
    folder is expanded, not recursively, to the entries directly inside it that look like
    checkpoints: a known suffix (so a broken `.pt` is reported, not skipped) or content that
    sniffs as one. Hidden and temporary files are ignored. Duplicates are dropped.
    """
    from alphawatch.checkpoints import is_checkpoint_folder

    found: dict[str, None] = {}
    empty: list[Failure] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir() or is_checkpoint_folder(path):
            found.setdefault(raw, None)
            continue
        try:
            children = sorted(path.iterdir())
        except OSError as exc:
            empty.append({"path": raw, "reason": "unreadable",
                          "message": f"{raw}: cannot list the folder: {exc.strerror or exc}"})
            continue
        inside = [str(child) for child in children if _looks_like_checkpoint(child, sniff)]
        if not inside:
            empty.append({"path": raw, "reason": "is_directory",
                          "message": f"{raw} is a folder that is not a checkpoint and holds no "
                                     "checkpoint files directly inside it"})
        for child in inside:
            found.setdefault(child, None)
    return list(found), empty


def _looks_like_checkpoint(child: Path, sniff: Callable[[Path], str]) -> bool:
    from alphawatch.checkpoints import is_checkpoint_folder
    from alphawatch.errors import CheckpointError

    if _ignored(child.name):
        return False
    if child.is_dir():
        return is_checkpoint_folder(child)
    if child.is_file() and child.suffix.lower() in CHECKPOINT_SUFFIXES:
        return True
    try:
        sniff(child)
    except (CheckpointError, OSError):
        return False
    return True


def failure_line(path: str, message: str, reason: str) -> str:
    """The one stderr line for a file that was not analyzed; always names the file."""
    text = " ".join(message.split())  # one line, whatever the message holds
    if path not in text:
        text = f"{path}: {text}"
    return f"{PROG}: {text} [{reason}]"


def _progress(items: Sequence[str], quiet: bool) -> Any:
    """A tqdm bar on stderr for several checkpoints on a terminal; silent in logs and pipes."""
    from tqdm import tqdm

    show = not quiet and len(items) > 1 and sys.stderr.isatty()
    return tqdm(items, desc="analyzing", unit="ckpt", file=sys.stderr, disable=not show,
                dynamic_ncols=True, leave=False)


def analyze_paths(
    paths: Sequence[str], options: AnalysisOptions, quiet: bool = False
) -> tuple[list[CheckpointResult], list[Failure]]:
    """Analyze each path; errors become failure records, each printed as one line."""
    from tqdm import tqdm

    from alphawatch.errors import CheckpointError
    from alphawatch.pipeline import analyze_file

    results: list[CheckpointResult] = []
    failures: list[Failure] = []
    bar = _progress(paths, quiet)
    for path in bar:
        bar.set_postfix_str(os.path.basename(path), refresh=False)
        try:
            results.append(analyze_file(Path(path), options))
        except CheckpointError as exc:
            failures.append({"path": path, "reason": exc.reason, "message": exc.message})
            tqdm.write(failure_line(path, exc.message, exc.reason), file=sys.stderr)
    bar.close()
    return results, failures


def in_training_order(results: Sequence[CheckpointResult]) -> list[CheckpointResult]:
    """`alphawatch.ordering.training_order`, with each file's mtime as the daemon records it."""
    from alphawatch.ordering import training_order
    from alphawatch.service.paths import identity_of

    def mtime(result: CheckpointResult) -> int | None:
        identity = identity_of(Path(result["path"]))
        return identity.mtime_ns if identity is not None else None

    return training_order(results, step=lambda r: r["step"], mtime=mtime)


def unknown_networks(results: Sequence[CheckpointResult], failures: Sequence[Failure],
                     options: AnalysisOptions) -> str | None:
    """The stderr line for `--networks` names no analyzed checkpoint has, or None."""
    from alphawatch.results import network_names

    found = network_names(list(results))
    unknown = [n for n in options.networks if n not in found]
    if not unknown or not results:  # without any result, the failures already said why
        return None
    return (f"{PROG}: unknown network(s) {', '.join(unknown)}: in none of the {len(results)} analyzed "
            "checkpoint(s); each one's `missing_networks` issue lists the networks it has [no_weights]")


def _swallowed_hint(networks: Sequence[str] | None) -> str:
    """`--networks actor ckpt.pt` makes the path a network name; say so instead of guessing."""
    paths = [n for n in networks or () if os.path.exists(n)]
    if not paths:
        return ""
    return (f"; {paths[0]!r} was taken as a network name: put paths before --networks "
            "or give them with --checkpoint")


def _prepare_outputs(args: argparse.Namespace) -> None:
    """Create output folders before spending minutes on analysis, so a typo fails fast."""
    from alphawatch.report.json_report import is_special

    targets = [args.output_dir] if args.output_dir else []
    if args.json_path and args.json_path != "-":
        json_path = Path(args.json_path)
        if json_path.is_dir():
            raise UsageError(f"--json {args.json_path} is a folder; give a file name (or '-')")
        if is_special(json_path):  # /dev/stdout, a pipe: written through, its folder does not matter
            if not os.access(json_path, os.W_OK):
                raise UsageError(f"--json {args.json_path} is not writable")
        else:
            targets.append(json_path.parent)
    for folder in targets:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create output folder {folder}: {exc.strerror or exc}") from None
        if not os.access(folder, os.W_OK):
            raise UsageError(f"output folder {folder} is not writable")


def _emit(document: Document, args: argparse.Namespace, threshold: float) -> None:
    from alphawatch.report import json_report, text, write_reports

    console: TextIO | None = None if args.quiet else sys.stdout
    if args.json_path == "-":
        json_report.dump(document, sys.stdout)
        console = None if args.quiet else sys.stderr
    elif args.json_path:
        json_report.write(document, Path(args.json_path))
    if console is not None:
        console.write(text.render(document, threshold))
        console.flush()
    if args.output_dir:
        written = write_reports(document, args.output_dir, threshold=threshold, plots=not args.no_plots)
        if console is not None:
            console.write(f"Reports written to {args.output_dir}: {_describe(written)}\n")


def _describe(paths: Sequence[Path]) -> str:
    """`network_health_report.txt, results.json, 5 CSV, 6 PNG` (the names are in the folder)."""
    named = [p.name for p in paths if p.suffix in (".txt", ".json")]
    counts = [f"{sum(p.suffix == s for p in paths)} {s[1:].upper()}" for s in (".csv", ".png")]
    return ", ".join(named + [c for c in counts if not c.startswith("0 ")])


def main(args: argparse.Namespace) -> int:
    """Run the analysis; return the exit code (see the module docstring)."""
    inputs = list(args.checkpoints) + list(args.paths)
    try:
        if not inputs:
            raise UsageError("no checkpoints given (use --checkpoint CKPT ... or bare paths)"
                             + _swallowed_hint(args.networks))
        options = build_options(args)
        _prepare_outputs(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    from alphawatch.analysis.trend import trend
    from alphawatch.checkpoints import sniff
    from alphawatch.report.json_report import build_document

    if options.model_factory and os.getcwd() not in sys.path:
        # `module:function` from the user's project, as `python -m` would find it; appended,
        # so nothing in the current folder shadows an installed package
        sys.path.append(os.getcwd())
    paths, failures = expand(inputs, sniff)
    for failure in failures:
        print(failure_line(failure["path"], failure["message"], failure["reason"]), file=sys.stderr)
    results, load_failures = analyze_paths(paths, options, quiet=args.quiet)
    failures += load_failures
    ordered = in_training_order(results)
    document = build_document(ordered, failures, trend(ordered, threshold=options.alpha_threshold))
    try:
        _emit(document, args, options.alpha_threshold)
    except BrokenPipeError:  # `| head`: the reader has gone; alphawatch.cli ends quietly
        raise
    except OSError as exc:
        print(f"{PROG}: error: cannot write reports: {exc}", file=sys.stderr)
        return EXIT_USAGE
    unknown = unknown_networks(results, failures, options)
    if unknown:
        print(unknown, file=sys.stderr)
    return EXIT_FAILED if failures or unknown else EXIT_OK
