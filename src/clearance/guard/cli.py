"""``clearance guard``: score JSON lines, explain scores, train the shipped model, evaluate it.

``--config`` is optional for these commands: without it the built-in guard
runs with the default thresholds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click
import orjson

from clearance.cli import open_config
from clearance.guard.base import Guard, message_texts
from clearance.guard.settings import GuardSettings
from clearance.types import GuardScores

optional_config = click.option(
    "--config", "config_path", required=False, default=None, type=click.Path(dir_okay=False),
    envvar="CLEARANCE_CONFIG", help="Path to clearance.yaml (optional; or $CLEARANCE_CONFIG).",
)


def _settings(config_path: str | None) -> tuple[GuardSettings, Path | None]:
    if not config_path:
        return GuardSettings(), None
    cfg = open_config(config_path)
    return cfg.guard, (cfg.path.parent if cfg.path else None)


def _texts(line: bytes) -> list[str]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError('each line must be an object with "text" or "messages"')
    if "text" in obj:
        if not isinstance(obj["text"], str):
            raise ValueError('"text" must be a string')
        return [obj["text"]]
    if "messages" in obj:
        if not isinstance(obj["messages"], list):
            raise ValueError('"messages" must be a list')
        return message_texts(obj["messages"])
    raise ValueError('each line must be an object with "text" or "messages"')


@click.group()
def guard() -> None:
    """Screen prompts with the guard classifier; train and evaluate it."""


def _load(config_path: str | None, guard_name: str | None) -> Guard:
    from clearance.guard.loader import build_guard

    settings, config_dir = _settings(config_path)
    try:
        return build_guard(guard_name or settings.default, settings, config_dir)
    except (KeyError, OSError, ValueError) as e:
        raise click.ClickException(f"cannot load guard: {e}") from None


def _each_line(answer: Callable[[list[str]], dict]) -> None:
    """Stream JSON lines from stdin to stdout: one answer per input line, flushed at once.
    A bad line gets ``{"error": ...}`` and the next line is read."""
    out = sys.stdout.buffer
    inp = sys.stdin.buffer
    while True:
        line = inp.readline()
        if not line:
            break
        if not line.strip():
            continue
        try:
            rec = answer(_texts(line))
        except ValueError as e:
            rec = {"error": str(e)}
        out.write(orjson.dumps(rec) + b"\n")
        out.flush()


def _scored(result: GuardScores) -> dict:
    if result.error:
        return {"error": result.error, "guard": result.guard}
    return {"scores": result.scores, "flagged": list(result.flagged)}


@guard.command("score")
@optional_config
@click.option("--guard", "guard_name", default=None, help="Guard to use (default: the configured default).")
def score_cmd(config_path: str | None, guard_name: str | None) -> None:
    """Score JSON lines from stdin: {"text": ...} or {"messages": [...]}; one JSON line out each."""
    g = _load(config_path, guard_name)
    _each_line(lambda texts: _scored(g.score(texts)))


@guard.command("explain")
@optional_config
@click.option("--guard", "guard_name", default=None, help="Guard to use (default: the configured default).")
@click.option("--top", type=click.IntRange(1, 200), default=10, show_default=True,
              help="N-grams listed per category and direction.")
def explain_cmd(config_path: str | None, guard_name: str | None, top: int) -> None:
    """Explain scores of JSON lines from stdin: the text, passage and n-grams behind each category's score.

    Reads what ``guard score`` reads and writes its scores and flags, plus per
    category where the score came from (which text, or the whole conversation;
    which window or paragraph) and the n-grams that raised and lowered it most.
    Works with built-in (linear) guards.
    """
    from clearance.guard.explain import explain
    from clearance.guard.linear import LinearGuard

    g = _load(config_path, guard_name)
    if not isinstance(g, LinearGuard):
        raise click.ClickException(f"guard {g.name!r} is remote; only built-in guards can be explained")

    def answer(texts: list[str]) -> dict:
        rec = _scored(g.score(texts))
        if "error" not in rec:
            rec["explanations"] = {c: e.to_dict() for c, e in explain(g, texts, top).items()}
        return rec

    _each_line(answer)


@guard.command("train")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where to write the model (default: the package's guard/model/).")
@click.option("--seed", type=int, default=0, show_default=True)
def train_cmd(out_dir: str | None, seed: int) -> None:
    """Rebuild the built-in classifier from the recorded data, offline and deterministically."""
    from clearance.guard.model import MODEL_DIR
    from clearance.guard.train import train

    train(Path(out_dir) if out_dir else MODEL_DIR, seed=seed, log=lambda m: click.echo(m, err=True))


@guard.command("eval")
@optional_config
@click.option("--model-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Evaluate a model trained with --out instead of the shipped one.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_cmd(config_path: str | None, model_dir: str | None, seed: int, as_json: bool) -> None:
    """Quality on the family-held-out test split and the benign contrast set."""
    from clearance.guard.evaluate import evaluate
    from clearance.guard.linear import LinearGuard
    from clearance.guard.model import MODEL_DIR, LinearModel

    settings, _ = _settings(config_path)
    try:
        model = LinearModel.load(Path(model_dir) if model_dir else MODEL_DIR)
    except (OSError, ValueError, KeyError) as e:
        raise click.ClickException(f"cannot load model: {e}") from None
    conversation = LinearGuard(model, settings.thresholds, cache_entries=0).raw_scores  # as the gateway combines texts
    report = evaluate(model.scores, settings.thresholds, seed=seed, score_conversation=conversation)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"family-held-out test set: {report['test_examples']} examples")
    click.echo(_HEADER)
    for cat, r in report["categories"].items():
        click.echo(_quality_row(cat, r))
    for cat, r in report["categories"].items():
        missed = [f"{fam} {v['detected']}/{v['positives']}" for fam, v in r["by_family"].items()
                  if v["positives"] and v["detected"] < v["positives"]]
        if missed:
            click.echo(f"  {cat} detected at threshold, by family: {', '.join(missed)}")
    bc = report["benign_contrast"]
    click.echo(f"benign contrast set: {bc['examples']} prompts, false-positive rate {bc['false_positive_rate']:.3f}")
    for t in bc["flagged"]:
        click.echo(f"  flagged: {t[:100]}")
    conv = report["conversations"]
    click.echo(f"held-out conversations (messages screened together): {conv['conversations']}")
    click.echo(_HEADER)
    for cat, r in conv["categories"].items():
        click.echo(_quality_row(cat, r))
    click.echo("  flagged by kind: " + ", ".join(f"{k} {v['flagged']}/{v['conversations']}"
                                                for k, v in conv["flagged_by_kind"].items()))


_HEADER = f"{'category':<15}{'pos':>6}{'neg':>6}{'AUROC':>8}{'TPR@1%FPR':>11}{'thr':>6}{'TPR':>7}{'FPR':>7}"


def _quality_row(cat: str, r: dict) -> str:
    def num(v: float | None, width: int) -> str:
        return f"{'-':>{width}}" if v is None else f"{v:>{width}.3f}"
    return (f"{cat:<15}{r['positives']:>6}{r['negatives']:>6}{num(r['auroc'], 8)}{num(r['tpr_at_1pct_fpr'], 11)}"
            f"{r['threshold']:>6.2f}{num(r['tpr_at_threshold'], 7)}{num(r['fpr_at_threshold'], 7)}")
