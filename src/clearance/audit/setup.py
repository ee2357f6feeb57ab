"""Build the audit log's signer, verifier and ``AuditLog`` from a loaded config.

The gateway calls ``open_audit_log(config, engine)`` once at start-up; the
CLI uses the same functions, so keys are found the same way everywhere.
``check_audit_setup(config)`` loads every configured key without opening the
store, so ``clearance serve`` can refuse to start with a clear message.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from clearance.audit.checkpoint import CheckpointSigner, NoteError, NoteVerifier, load_verifier
from clearance.audit.content import ContentKeyError, cipher_from_config
from clearance.audit.log import AuditLog

if TYPE_CHECKING:
    from clearance.config import Config


def signing_key_path(config: Config) -> Path | None:
    """The configured signing key file, resolved against the config's folder."""
    return config.resolve(config.audit.signing_key) if config.audit.signing_key else None


def signer_from_config(config: Config) -> CheckpointSigner | None:
    """The checkpoint signer, or None when no signing key is configured.

    Raises ``NoteError`` when a key is configured but cannot be read or names
    a different log than ``audit.origin``.
    """
    path = signing_key_path(config)
    if path is None:
        return None
    signer = CheckpointSigner.load(path)
    if signer.name != config.audit.origin:
        raise NoteError(f"signing key {path} is for {signer.name!r}, but audit.origin is {config.audit.origin!r}")
    return signer


def verifier_from_config(config: Config, key: str | None = None) -> NoteVerifier | None:
    """The verifier from ``key`` (a key or a file), ``audit.verifier_key`` or the signing key."""
    if key:
        return load_verifier(key)
    vk = config.audit.verifier_key
    if vk:
        return load_verifier(vk if "+" in vk and not config.resolve(vk).is_file() else config.resolve(vk))
    signer = signer_from_config(config)
    return signer.verifier if signer is not None else None


class AuditSetupError(Exception):
    """A configured audit key is missing or unusable; the gateway must not start."""


def check_audit_setup(config: Config) -> None:
    """Load the signing key and, with ``store_content``, the content key; raise ``AuditSetupError`` if one fails."""
    if not config.audit.enabled:
        return
    try:
        signer_from_config(config)
        cipher_from_config(config)
        for w in config.audit.witnesses:
            from clearance.witness.cosign import CosignatureVerifier

            path = config.resolve(w.key)
            CosignatureVerifier.parse(path.read_text() if path.is_file() else w.key)
    except (NoteError, ContentKeyError, OSError) as e:
        raise AuditSetupError(f"the gateway cannot start: {e}") from None


def open_audit_log(config: Config, engine: Engine) -> AuditLog:
    """An ``AuditLog`` for ``config`` on ``engine`` (not started; ``append`` starts it).

    Raises ``NoteError`` or ``ContentKeyError`` when a configured key cannot
    be used: with ``store_content`` on, no log is opened without its key.
    """
    publish_dir = config.resolve(config.audit.checkpoint_dir) if config.audit.checkpoint_dir else None
    return AuditLog(engine, config.audit, signer_from_config(config), cipher_from_config(config), publish_dir)
