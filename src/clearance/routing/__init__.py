"""Routing: map a logical model to a chain of backends, with fallback and circuit breakers."""
