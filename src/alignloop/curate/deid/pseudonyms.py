"""Pseudonymous user ids re-hashed with a per-release secret.

Each public release gets a fresh random secret, so ids cannot be linked across releases nor
back to the store's ids without it; within one release the same user keeps the same id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

RELEASE_ID_HEX = 32  # 128 bits: collisions are negligible for any realistic user count


def new_release_secret() -> str:
    """A fresh random secret (64 hex characters) for one release; keep it out of the release."""
    return secrets.token_hex(32)


def rehash_user_id(user_id: str, secret: str) -> str:
    """The release's id for a user: HMAC-SHA256 of the id under the release secret, 32 hex."""
    if not secret:
        raise ValueError("a release secret is required (see new_release_secret)")
    digest = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    return digest[:RELEASE_ID_HEX]
