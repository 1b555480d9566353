"""Shopify client credentials: the current one for new logins, and an optional previous one during rotation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from app.config import Settings


@dataclass(frozen=True, slots=True)
class Credential:
    """One Shopify client credential. `id` names it in session records without revealing the secret."""

    client_id: str
    client_secret: str = field(repr=False)
    id: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256(f"{self.client_id}:{self.client_secret}".encode()).hexdigest()[:16]
        object.__setattr__(self, "id", digest)


@dataclass(frozen=True, slots=True)
class Credentials:
    """The credentials this BFF may use; sessions refresh with the one their tokens were issued to."""

    current: Credential
    previous: Credential | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        current = Credential(settings.shopify_client_id, settings.shopify_client_secret.get_secret_value())
        previous = None
        if settings.shopify_previous_client_secret is not None:
            previous = Credential(
                settings.shopify_previous_client_id or settings.shopify_client_id,
                settings.shopify_previous_client_secret.get_secret_value(),
            )
        return cls(current, previous)

    def for_session(self, credential_id: str) -> Credential:
        """The credential a session's tokens were issued to, or the current one if it is gone."""
        if self.previous is not None and credential_id == self.previous.id:
            return self.previous
        return self.current

    def other_than(self, credential: Credential) -> Credential | None:
        """The fallback after `invalid_client`: the other configured credential, if any."""
        if self.previous is None:
            return None
        return self.previous if credential.id == self.current.id else self.current

    def is_previous(self, credential: Credential) -> bool:
        return self.previous is not None and credential.id == self.previous.id
