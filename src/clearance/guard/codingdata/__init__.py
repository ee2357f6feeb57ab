"""Hand-written everyday programming requests: benign rows measured for every head, not trained on.

The cyber heads had learnt "write code that ..." as a sign of an offensive request: most harmful
training rows are phrased that way, and the benign rows had few generic programming requests, so
ordinary tasks ("... reads a config file and validates its fields", "... deletes temporary files
older than seven days") were refused as prohibited (docs/guard.md, "Everyday coding requests").
The tasks below were written for Clearance, in its own words; ``build`` combines them with the ways
users phrase a request, with a fixed seed, into ``data/handwritten/benign-coding.txt`` (family
``benign-hw-coding``: the rows a retrained model was fitted on; not in MANIFEST.json, since none of the
variants kept held-out cyber recall and fixed the false positive) and
``data/handwritten/benign-coding-heldout.txt`` (two further families of tasks, measured only):

    python -m clearance.guard.codingdata

Some tasks touch security-adjacent but ordinary work (hashing passwords, encrypting a file with a key
from the environment, a login form, backups, cleaning up temporary files): that is where the false
positives were.  None of them is offensive.
"""
