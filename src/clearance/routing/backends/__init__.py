"""Upstream backends: OpenAI-compatible servers and the Anthropic Messages API."""
