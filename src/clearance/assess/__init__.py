"""Assess: jailbreak risk assessment against any OpenAI-compatible endpoint."""
