"""``clearance guard``: score JSON lines, explain scores, train the shipped model, evaluate it.

``--config`` is optional for these commands: without it the built-in guard
runs with the default thresholds.
"""

from __future__ import annotations

import json
import subprocess
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
    return _texts_of(_object(line))


def _object(line: bytes) -> dict:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError('each line must be an object with "text" or "messages"')
    return obj


def _labels(obj: dict) -> dict[str, int]:
    """A labelled line's ``"labels"``: 0 or 1 (or false/true) for one or more categories."""
    from clearance.guard.dataset import CATEGORIES

    labels = obj.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f'each line needs "labels": an object giving 0 or 1 for any of {", ".join(CATEGORIES)}')
    out = {}
    for cat, v in labels.items():
        if cat not in CATEGORIES:
            raise ValueError(f"unknown category {cat!r}; categories: {', '.join(CATEGORIES)}")
        if v not in (0, 1) or isinstance(v, float):
            raise ValueError(f"label of {cat!r} must be 0 or 1 (or false or true)")
        out[cat] = int(v)
    return out


def _texts_of(obj: dict) -> list[str]:
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
    settings, config_dir = _settings(config_path)
    return _build(settings, config_dir, guard_name)


def _build(settings: GuardSettings, config_dir: Path | None, guard_name: str | None) -> Guard:
    from clearance.guard.loader import build_guard

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
@click.option("--bags", type=click.IntRange(1, 50), default=None,
              help="Members averaged into the model (default: the shipped recipe's).")
def train_cmd(out_dir: str | None, seed: int, bags: int | None) -> None:
    """Rebuild the built-in classifier from the recorded data, offline and deterministically."""
    from clearance.guard.model import MODEL_DIR
    from clearance.guard.train import BAGS, train

    train(Path(out_dir) if out_dir else MODEL_DIR, seed=seed, bags=bags or BAGS,
          log=lambda m: click.echo(m, err=True))


@guard.command("eval")
@optional_config
@click.option("--model-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Evaluate a model trained with --out instead of the shipped one.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data", "data", type=click.File("rb"), default=None,
              help='Your own labelled JSON lines instead of the held-out split ("-" for stdin): '
                   '{"text" or "messages", "labels": {"jailbreak": 0 or 1, ...}}.')
@click.option("--guard", "guard_name", default=None, help="With --data: the guard to evaluate (default: the configured default).")
@click.option("--target-fpr", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.01,
              show_default=True, help="With --data: the false-positive rate to suggest thresholds for.")
@click.option("--lofo", is_flag=True,
              help="Leave one family out: retrain the recipe once per family (about a minute of CPU each) "
                   "and report how much of each family is caught or flagged (JSON).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_cmd(config_path: str | None, model_dir: str | None, seed: int, data, guard_name: str | None,
             target_fpr: float, lofo: bool, as_json: bool) -> None:
    """Quality on the family-held-out test split and the benign contrast set, or on your own labelled data.

    With --data, every line is screened as the gateway screens a request (all
    its texts together) and, per category, the report gives AUROC, the TPR and
    the threshold at --target-fpr on your negatives, the TPR/FPR at the
    configured threshold, and the worst false positives and misses by line.
    """
    if data is not None:
        _eval_labelled(config_path, model_dir, guard_name, data, target_fpr, as_json)
        return
    if lofo:
        from clearance.guard.lofo import run

        click.echo(json.dumps(run(seed=seed, log=lambda m: click.echo(m, err=True)), indent=2))
        return
    from clearance.guard.evaluate import evaluate

    settings, _ = _settings(config_path)
    g = _linear_guard(settings, model_dir)
    # Each test text and conversation is screened as the gateway screens a request.
    report = evaluate(lambda t: g.raw_scores([t]), settings.thresholds, seed=seed, score_conversation=g.raw_scores)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"family-held-out test set: {report['test_examples']} examples, "
               f"false positives counted on its {report['hard_negatives']} hard benign prompts")
    click.echo(_HEADER)
    for cat, r in report["categories"].items():
        click.echo(_quality_row(cat, r))
    for cat, r in report["categories"].items():
        missed = [f"{fam} {v['detected']}/{v['positives']}" for fam, v in r["by_family"].items()
                  if v["positives"] and v["detected"] < v["positives"]]
        if missed:
            click.echo(f"  {cat} detected at threshold, by family: {', '.join(missed)}")
    t = report["targets"]
    click.echo("targets:")
    click.echo(f"  jailbreak TPR at 1% FPR (hard negatives)          {_fmt(t['jailbreak_tpr_at_1pct_fpr'])}  (target 0.95)")
    click.echo(f"  prohibited or high-risk TPR at 1% FPR             {_fmt(t['offensive_tpr_at_1pct_fpr'])}  (target 0.90)")
    click.echo(f"  prohibited recognised as prohibited               {_fmt(t['prohibited_recognised']['rate'])}  (target 0.85)")
    b, p = t["benign_security_flagged_offensive"], t["personas_flagged_jailbreak"]
    click.echo(f"  benign security work flagged prohibited/high-risk {_fmt(b['rate'])}  "
               f"({b['flagged']}/{b['examples']}, target at most 0.03)")
    click.echo(f"  persona and system prompts flagged as jailbreak   {_fmt(p['rate'])}  "
               f"({p['flagged']}/{p['examples']}, target at most 0.02)")
    tc = report["tier_confusion"]
    click.echo("tier confusion (rows: true tier, columns: predicted at the thresholds):")
    click.echo(" " * 12 + "".join(f"{n:>12}" for n in tc["tiers"]))
    for name, row in zip(tc["tiers"], tc["matrix"]):
        click.echo(f"{name:>12}" + "".join(f"{v:>12}" for v in row))
    bc = report["benign_contrast"]
    click.echo(f"benign contrast set: {bc['examples']} prompts, false-positive rate {_fmt(bc['false_positive_rate'])}")
    for text in bc["flagged"]:
        click.echo(f"  flagged: {text[:100]}")
    conv = report["conversations"]
    click.echo(f"held-out conversations (messages screened together): {conv['conversations']}")
    click.echo(_HEADER)
    for cat, r in conv["categories"].items():
        click.echo(_quality_row(cat, r))
    click.echo("  flagged by kind: " + ", ".join(f"{k} {v['flagged']}/{v['conversations']}"
                                                for k, v in conv["flagged_by_kind"].items()))


def _fmt(v: float | None) -> str:
    return "    -" if v is None else f"{v:.3f}"


def _linear_guard(settings: GuardSettings, model_dir: str | None):
    """The built-in guard from ``model_dir`` (one written by ``guard train --out``) or the shipped model."""
    from clearance.guard.linear import LinearGuard
    from clearance.guard.model import MODEL_DIR

    try:
        return LinearGuard.load(settings.thresholds, Path(model_dir) if model_dir else MODEL_DIR, cache_entries=0)
    except (OSError, ValueError, KeyError) as e:
        raise click.ClickException(f"cannot load model: {e}") from None


def _eval_labelled(config_path: str | None, model_dir: str | None, guard_name: str | None, data,
                   target_fpr: float, as_json: bool) -> None:
    from clearance.guard.evaluate import evaluate_labelled

    settings, config_dir = _settings(config_path)
    if model_dir:
        g: Guard = _linear_guard(settings, model_dir)
    else:
        g = _build(settings, config_dir, guard_name)
    scored, skipped, failed = [], [], []
    for n, line in enumerate(data, 1):
        if not line.strip():
            continue
        try:
            obj = _object(line)
            texts, labels = _texts_of(obj), _labels(obj)
        except ValueError as e:
            skipped.append({"line": n, "error": str(e)})
            continue
        result = g.score(texts)
        if result.error:  # the gateway would refuse such a request (fail closed); it is not scored here
            failed.append({"line": n, "error": result.error})
            continue
        scored.append((n, "\n\n".join(texts), result.scores, labels))
    report = evaluate_labelled(scored, settings.thresholds, target_fpr)
    report["skipped_lines"] = skipped
    report["guard_errors"] = failed
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"labelled examples: {report['examples']} scored, {len(skipped)} lines skipped, "
               f"{len(failed)} guard errors")
    for e in (skipped + failed)[:5]:
        click.echo(f"  line {e['line']}: {e['error']}")
    pct = f"{target_fpr * 100:g}%"
    click.echo(f"{'category':<15}{'pos':>6}{'neg':>6}{'AUROC':>8}{'TPR@' + pct + 'FPR':>12}{'thr@' + pct:>9}"
               f"{'thr':>6}{'TPR':>7}{'FPR':>7}")

    def num(v: float | None, width: int, places: int = 3) -> str:
        return f"{'-':>{width}}" if v is None else f"{v:>{width}.{places}f}"
    for cat, r in report["categories"].items():
        click.echo(f"{cat:<15}{r['positives']:>6}{r['negatives']:>6}{num(r['auroc'], 8)}"
                   f"{num(r['tpr_at_target_fpr'], 12)}{num(r['threshold_for_target_fpr'], 9, 4)}"
                   f"{r['threshold']:>6.2f}{num(r['tpr_at_threshold'], 7)}{num(r['fpr_at_threshold'], 7)}")
    for cat, r in report["categories"].items():
        for what, rows in (("false positive", r["false_positives"]), ("missed", r["missed"])):
            for x in rows:
                click.echo(f"  {cat} {what} (line {x['line']}, {x['score']:.3f}): {x['text']!r}")
        if "note" in r:
            click.echo(f"  {cat}: no threshold suggested ({r['note']})")
        elif r["positives"]:
            click.echo(f"  {cat}: to flag at most {pct} of these negatives, set guard.thresholds.{cat}: "
                       f"{r['threshold_for_target_fpr']} (TPR {r['tpr_at_suggested']:.3f}, FPR {r['fpr_at_suggested']:.3f})")


_HEADER = f"{'category':<17}{'pos':>6}{'neg':>6}{'AUROC':>8}{'TPR@1%FPR':>11}{'thr':>6}{'TPR':>7}{'FPR':>7}"


def _quality_row(cat: str, r: dict) -> str:
    def num(v: float | None, width: int) -> str:
        return f"{'-':>{width}}" if v is None else f"{v:>{width}.3f}"
    return (f"{cat:<17}{r['positives']:>6}{r['negatives']:>6}{num(r['auroc'], 8)}{num(r['tpr_at_1pct_fpr'], 11)}"
            f"{r['threshold']:>6.2f}{num(r['tpr_at_threshold'], 7)}{num(r['fpr_at_threshold'], 7)}")


@guard.command("capture-prompts", context_settings={"ignore_unknown_options": True})
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="File to write the system prompts to (then list it under guard.trusted_system_prompts).")
@click.option("--port", type=int, default=0, help="Loopback port of the simulated model server (default: a free one).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def capture_prompts_cmd(out_path: str, port: int, command: tuple[str, ...]) -> None:
    """Run an agent once against a simulated model server and save the system prompts it sends.

    Example: clearance guard capture-prompts --out agent-prompts.txt -- claude -p hello
    """
    import socket

    from clearance.guard.capture import capture

    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    try:
        texts = capture(list(command), Path(out_path), port)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        raise click.ClickException(str(e)) from None
    if not texts:
        raise click.ClickException("the command sent no system prompt")
    click.echo(f"wrote {len(texts)} system prompt(s), {sum(len(t) for t in texts)} characters, to {out_path}; "
               "read them, then list the file under guard.trusted_system_prompts")
