"""How the API's authentication appears in the OpenAPI schema (and so in Swagger UI's Authorize box)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "orchestrator_project.accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A user token from POST /api/v1/auth/token (aou_…) or an agent's token (aoa_…).",
        }
