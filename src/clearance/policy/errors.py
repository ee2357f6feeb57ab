"""Errors raised by the policy control plane (directives, approvals, grants), mapped to HTTP statuses by the admin API."""

from __future__ import annotations


class PolicyAdminError(Exception):
    """A control-plane request that cannot be carried out; ``status`` is the matching HTTP status."""

    status = 400
    code = "invalid_request"


class InvalidRequest(PolicyAdminError):
    status = 400
    code = "invalid_request"


class NotFound(PolicyAdminError):
    status = 404
    code = "not_found"


class Conflict(PolicyAdminError):
    status = 409
    code = "conflict"
