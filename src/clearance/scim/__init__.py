"""SCIM 2.0 provisioning (RFC 7643/7644) of each org's users by its own identity provider.

``tokens`` holds the per-org bearer tokens, ``resources`` turns stored users
into SCIM resources (with the Clearance extension for nationality, US-person
status and verification) and back, ``api`` serves ``/scim/v2``.
"""
