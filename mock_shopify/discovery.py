"""The discovery documents and the JWKS, shaped like a live shop's."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from mock_shopify.authorize import SCOPES_SUPPORTED
from mock_shopify.knobs import take_failure
from mock_shopify.state import Store

UI_LOCALES = (
    "bg cs da de el en es fi fr hi hr hu id it ja ko lt ms nb nl pl pt-BR pt-PT ro ru sk sl sv th tr vi zh-CN zh-TW"
).split()
CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nonce", "sid", "email", "email_verified")
# The fields the `discovery_fields` knob may set, per document. `mcp_api` is not served, so it is only there
# when a test sets it (real shops advertise it; advertising an endpoint that 404s would mislead the BFF).
OIDC_FIELDS = ("issuer", "authorization_endpoint", "token_endpoint", "end_session_endpoint", "jwks_uri")
API_FIELDS = ("graphql_api", "mcp_api")
# The documents are always served here too, never redirected: a `discovery_redirect` target on the same server.
MOVED = "/_moved"


class DiscoveryEndpoints:
    """`/.well-known/openid-configuration`, `/.well-known/customer-account-api` (also under `/_moved`), the JWKS."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def routes(self) -> list[Route]:
        return [
            *(
                Route(f"{prefix}/.well-known/openid-configuration", self.openid_configuration, methods=["GET"])
                for prefix in ("", MOVED)
            ),
            *(
                Route(f"{prefix}/.well-known/customer-account-api", self.customer_account_api, methods=["GET"])
                for prefix in ("", MOVED)
            ),
            *(
                Route(f"{path}/.well-known/jwks.json", self.jwks, methods=["GET"])
                for path in self.store.config.auth_paths.values()
            ),
        ]

    def _seen(self, request: Request, what: str) -> None:
        # Recorded so tests can check that every outbound call carries the BFF's User-Agent.
        self.store.stats.user_agents[what] = request.headers.get("user-agent", "")

    async def _document(
        self, request: Request, what: str, document: dict[str, Any], fields: tuple[str, ...]
    ) -> Response:
        """One discovery document, after the knobs: counted, redirected, held, failed or with fields overridden."""
        self._seen(request, what)
        knobs = self.store.knobs
        self.store.stats.discovery_requests += 1
        if knobs.discovery_redirect is not None and not request.url.path.startswith(f"{MOVED}/"):
            # A shop whose documents moved (apex -> www, or a new domain): the BFF decides whether to follow.
            self.store.stats.discovery_redirects += 1
            redirect = knobs.discovery_redirect
            return RedirectResponse(f"{redirect.to}/.well-known/{what}", status_code=redirect.status)
        if knobs.hold_discovery is not None:
            await knobs.hold_discovery.wait()
        if failure := take_failure(knobs.fail_discovery):
            return JSONResponse({"errors": "Injected failure"}, status_code=failure.status)
        overrides = {k: v for k, v in knobs.discovery_fields.items() if k in fields}
        return JSONResponse({**document, **overrides})

    async def openid_configuration(self, request: Request) -> Response:
        config = self.store.config
        auth = config.base_url + config.auth_paths[self.store.knobs.fidelity.auth_layout]
        return await self._document(
            request,
            "openid-configuration",
            {
                "issuer": config.issuer,
                "token_endpoint": f"{auth}/oauth/token",
                "authorization_endpoint": f"{auth}/oauth/authorize",
                "end_session_endpoint": f"{auth}/logout",
                "jwks_uri": f"{auth}/.well-known/jwks.json",
                "scopes_supported": list(SCOPES_SUPPORTED),
                "response_types_supported": ["code"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": list(CLAIMS),
                "code_challenge_methods_supported": ["S256"],
                # Advertised like real shops do; the stand-in does not implement jwt-bearer.
                "grant_types_supported": [
                    "authorization_code",
                    "refresh_token",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer",
                ],
                "ui_locales_supported": UI_LOCALES,
                "op_policy_uri": "https://www.shopify.com/legal/privacy",
                "op_tos_uri": "https://www.shopify.com/legal/terms",
            },
            OIDC_FIELDS,
        )

    async def customer_account_api(self, request: Request) -> Response:
        config = self.store.config
        return await self._document(
            request,
            "customer-account-api",
            {"graphql_api": config.graphql_url(self.store.knobs.fidelity.graphql_shape)},
            API_FIELDS,
        )

    async def jwks(self, request: Request) -> JSONResponse:
        self._seen(request, "jwks")
        return JSONResponse(self.store.keys.jwks())
