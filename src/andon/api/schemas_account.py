"""Bodies of the account endpoints: password change, password reset, user disable."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from andon.api.schemas import Email, Password

__all__ = [
    "AuthOptionsOut",
    "OidcCallbackIn",
    "OidcStartOut",
    "PasswordChangeIn",
    "ResetIn",
    "ResetRequestIn",
    "UserStatusIn",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PasswordChangeIn(_In):
    current_password: Annotated[str, Field(min_length=1, max_length=256)]
    new_password: Password


class ResetRequestIn(_In):
    email: Email
    tenant: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")] | None = Field(
        None, description="only this tenant's account (else one link per account of the email)"
    )


class ResetIn(_In):
    token: Annotated[str, Field(min_length=1, max_length=200)]
    new_password: Password


class UserStatusIn(_In):
    disabled: bool = Field(description="true: the user's sessions end at once and logins fail")


class OidcStartOut(BaseModel):
    authorization_url: str = Field(description="send the browser here to sign in")


class OidcCallbackIn(_In):
    code: Annotated[str, Field(min_length=1, max_length=2000)]
    state: Annotated[str, Field(min_length=1, max_length=200)]


class AuthOptionsOut(BaseModel):
    password_reset: bool = Field(description="a reset link can be mailed (security.smtp)")
    sso: str | None = Field(
        description="the single sign-on provider's name, when one is configured (security.oidc)"
    )
