"""The HTTP layer: wire formats in, answers and errors out.  Never opens the database."""
