"""Clearance: a self-hosted gateway that decides who may use which AI model.

See ``pipeline.py`` for where a request is decided.
"""

__version__ = "0.1.0"
