"""The demo world and its simulated upstream model servers (demo and test doubles only)."""
