"""Identity: organisations, org groups, users and API keys."""
