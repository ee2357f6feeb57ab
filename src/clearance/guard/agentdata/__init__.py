"""Hand-written pieces of coding- and operations-agent prompts, assembled into benign training rows.

Agents (coding assistants in an editor or a terminal, operations and data bots)
send long system prompts made of many instruction paragraphs, tool descriptions,
and a context block around each user turn ("project notes you may use..."). None
of that is an attack, but the guard had never seen such text as benign, and every
instruction addressed to a model reads like a planted one to it (docs/guard.md,
"Coding agents").  The paragraphs below were written for Clearance, in its own
words, for no particular product; ``build`` assembles them with a fixed seed into
``data/handwritten/benign-agents.txt`` (family ``benign-hw-agents``):

    python -m clearance.guard.agentdata

No captured text of any real agent is used here: those are an acceptance check only.
"""
