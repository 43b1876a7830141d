"""Account lifecycle routes: password change, password reset by a one-time mailed link,
disabling a user, and single sign-on (OpenID Connect). Every outcome is audited under the
account's tenant."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any

import httpx
from fastapi import HTTPException, Request, Response

from andon.api.deps import Ctx, Services, Svc, client_address
from andon.api.params import P, api
from andon.api.schemas import TokenOut, UserOut
from andon.api.schemas_account import (
    AuthOptionsOut,
    OidcCallbackIn,
    OidcStartOut,
    PasswordChangeIn,
    ResetIn,
    ResetRequestIn,
    UserStatusIn,
)
from andon.platform.mail import MailError, reset_message, send
from andon.platform.oidc import OidcError, OidcLogin
from andon.platform.service import Invalid, LoginFailed

__all__: list[str] = []  # registers its routes on ``andon.api.params.api``

_log = logging.getLogger("andon.api.account")
_mailing: set[asyncio.Task[None]] = set()


@api.route(
    "POST",
    "/auth/password",
    name="auth.password",
    permission=None,
    scope="authenticated",
    status_code=204,
)
async def change_password(body: PasswordChangeIn, ctx: Ctx) -> Response:
    """Set a new password, giving the current one. Every other session of the user ends
    (this one stays)."""
    p = ctx.principal
    if p.kind != "user":
        raise Invalid("only users have passwords (revoke and replace an API key instead)")
    pf = ctx.services.platform
    try:
        ended = await pf.change_password(
            p.tenant_id,
            p.id,
            body.current_password,
            body.new_password,
            pf.session_of(ctx.credentials),
        )
    except LoginFailed as exc:
        await ctx.audit("auth.password", f"user:{p.id}", "failed", {"why": exc.reason})
        raise Invalid("current_password: does not match") from None
    await ctx.audit("auth.password", f"user:{p.id}", detail={"sessions_ended": ended})
    return Response(status_code=204)


async def _mail_reset(svc: Services, email: str, tenant: str | None, source: str) -> None:
    """Make a reset token per account of ``email`` (one address may have an account in
    several tenants) and mail each its own link; every outcome goes to the audit log, under
    the account's tenant."""
    sec = svc.settings.security
    assert sec.smtp is not None
    pf = svc.platform
    got = await pf.request_reset(email, tenant)
    if not got:
        await svc.anonymous.record(
            pf.audit,
            source=source,
            action="auth.reset.request",
            obj="password",
            detail={"why": "no such enabled account", "email": email[:100]},
            result="failed",
        )
        return
    base = sec.public_url or f"http://{svc.settings.host}:{svc.settings.port}"
    for reset in got:
        # the token rides in the fragment (the dashboard's #/reset page): browsers send it to
        # no server, nor in a Referer
        query = urllib.parse.urlencode({"token": reset.token, "tenant": reset.tenant_id})
        link = f"{base.rstrip('/')}/#/reset?{query}"
        result = "ok"
        detail: dict[str, Any] = {"expires_at": reset.expires_at}
        try:
            msg = reset_message(
                sec.smtp.from_addr,
                reset.email,
                link,
                sec.reset_ttl_s // 60,
                f"{reset.tenant_name} ({reset.tenant_id})",
            )
            await send(sec.smtp, msg)
        except MailError as exc:
            _log.error("password reset mail not sent: %s", exc)
            result, detail = "failed", {"why": str(exc)[:300]}
        await pf.audit.record(
            tenant_id=reset.tenant_id,
            actor=f"user:{reset.user_id}",
            source=source,
            action="auth.reset.request",
            obj="password",
            result=result,
            detail=detail,
        )


@api.route(
    "POST",
    "/auth/reset-request",
    name="auth.reset.request",
    permission=None,
    scope="public",
    status_code=202,
)
async def request_reset(body: ResetRequestIn, request: Request, svc: Svc) -> dict[str, str]:
    """Mail a one-time reset link to the address, one per account it has (in ``tenant``
    only, when given). The answer is the same whether any account exists or not, and comes
    before the mail is sent (its time says nothing)."""
    if svc.settings.security.smtp is None:
        raise Invalid("password reset by mail is not configured (security.smtp)")
    source = client_address(request, svc.settings.trust_proxy_headers)
    task = asyncio.create_task(_mail_reset(svc, body.email, body.tenant, source))
    _mailing.add(task)
    task.add_done_callback(_mailing.discard)
    return {"detail": "if the account exists, a reset link is on its way"}


@api.route(
    "POST", "/auth/reset", name="auth.reset", permission=None, scope="public", status_code=204
)
async def reset_password(body: ResetIn, request: Request, svc: Svc) -> Response:
    """Set a new password with a reset link's token (once, before it expires). Every
    session of the user ends."""
    pf = svc.platform
    source = client_address(request, svc.settings.trust_proxy_headers)
    try:
        tid, uid = await pf.reset_password(body.token, body.new_password)
    except LoginFailed as exc:
        await pf.audit.record(
            tenant_id=exc.tenant_id,
            actor=f"user:{exc.user_id}" if exc.user_id else "anonymous",
            source=source,
            action="auth.reset",
            obj="password",
            result="failed",
            detail={"why": exc.reason},
        )
        raise HTTPException(401, "invalid or expired reset token") from None
    await pf.audit.record(
        tenant_id=tid,
        actor=f"user:{uid}",
        source=source,
        action="auth.reset",
        obj="password",
        result="ok",
    )
    return Response(status_code=204)


@api.route(
    "PUT",
    "/users/{user_id}/status",
    name="users.status",
    permission=P.USER_WRITE,
    scope="tenant",
)
async def set_user_status(user_id: str, body: UserStatusIn, ctx: Ctx) -> UserOut:
    """Disable a user (their sessions and tokens stop working at once; logins fail) or
    enable them again."""
    if body.disabled and ctx.principal.kind == "user" and ctx.principal.id == user_id:
        raise Invalid("you cannot disable yourself")
    pf = ctx.services.platform
    ended = await pf.set_user_disabled(ctx.tenant, user_id, body.disabled)
    action = "users.disable" if body.disabled else "users.enable"
    await ctx.audit(action, f"user:{user_id}", detail={"sessions_ended": ended})
    return UserOut(**await pf.get_user(ctx.tenant, user_id))


def _oidc(svc: Services) -> OidcLogin:
    cfg = svc.settings.security.oidc
    if cfg is None:
        raise Invalid("single sign-on is not configured (security.oidc)")
    if svc.oidc is None:
        svc.oidc = OidcLogin(cfg, svc.platform.db, svc.platform.clock)
    return svc.oidc


@api.route("GET", "/auth/options", name="auth.options", permission=None, scope="public")
async def auth_options(svc: Svc) -> AuthOptionsOut:
    """What the login page offers besides a password: a mailed reset link, single sign-on.
    Says nothing about any account."""
    sec = svc.settings.security
    sso = None
    if sec.oidc is not None:
        sso = sec.oidc.name or urllib.parse.urlsplit(sec.oidc.issuer).hostname or "single sign-on"
    return AuthOptionsOut(password_reset=sec.smtp is not None, sso=sso)


@api.route("GET", "/auth/oidc/start", name="auth.oidc.start", permission=None, scope="public")
async def oidc_start(svc: Svc) -> OidcStartOut:
    """Begin a single sign-on: the provider's URL to send the browser to. The provider sends
    it back to ``security.oidc.redirect_uri`` with a code and state for ``/auth/oidc/callback``."""
    try:
        return OidcStartOut(authorization_url=await _oidc(svc).start())
    except (OidcError, httpx.HTTPError, KeyError, ValueError) as exc:
        _log.error("single sign-on: cannot reach the provider: %s", exc)
        raise HTTPException(503, "the sign-on provider is unavailable") from None


@api.route(
    "POST", "/auth/oidc/callback", name="auth.oidc.callback", permission=None, scope="public"
)
async def oidc_callback(body: OidcCallbackIn, request: Request, svc: Svc) -> TokenOut:
    """Finish a single sign-on: the provider's code and state for andon tokens, for the user
    of ``security.oidc.tenant`` whose email the provider verified."""
    sso = _oidc(svc)
    pf = svc.platform
    source = client_address(request, svc.settings.trust_proxy_headers)
    tenant: str | None = None
    actor = "anonymous"
    try:
        who = await sso.finish(body.code, body.state)
        actor = f"oidc:{who.subject[:100]}"
        tenant = sso.cfg.tenant
        uid, pair = await pf.sso_login(sso.cfg.tenant, who.email)
    except (OidcError, LoginFailed, httpx.HTTPError) as exc:
        why = exc.reason if isinstance(exc, LoginFailed) else str(exc)
        await pf.audit.record(
            tenant_id=tenant,
            actor=actor,
            source=source,
            action="auth.oidc",
            obj="session",
            result="failed",
            detail={"why": why[:300]},
        )
        raise HTTPException(401, "sign-on failed", headers={"WWW-Authenticate": "Bearer"}) from None
    await pf.audit.record(
        tenant_id=tenant,
        actor=f"user:{uid}",
        source=source,
        action="auth.oidc",
        obj="session",
        result="ok",
        detail={"subject": who.subject[:100]},
    )
    return TokenOut(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_at=pair.expires_at
    )
