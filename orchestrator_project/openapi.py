"""The error answers every API operation can give, added to the OpenAPI schema in one place.

Views document their successes and their own conflicts; the generic refusals (a bad request, missing or
insufficient credentials, an unknown id, an unsupported body, a throttle) come from DRF and the
middleware for every endpoint alike, so they are documented here rather than repeated on each view.
"""

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
    "description": "A refusal, with a human-readable reason in `detail`.",
}
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "additionalProperties": {},
    "description": "Field name -> messages (`non_field_errors` for the body as a whole), or `detail`.",
}

_DESCRIPTIONS = {
    "400": "Invalid request: malformed JSON, invalid fields or parameters",
    "401": "Missing, invalid, expired or revoked credentials",
    "403": "The credentials do not allow this",
    "404": "Not found",
    "413": "Request body too large",
    "415": "Unsupported request media type",
    "429": "Too many requests; retry after the time in Retry-After",
}
THROTTLED_OPERATIONS = {"agents_heartbeat_create", "auth_token_create"}


def _content(schema_name):
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    schemas.setdefault("ValidationError", VALIDATION_ERROR_SCHEMA)
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes = {"400", "404"}  # any query string may be refused (NUL), any unknown URL is a 404
            if operation.get("security") != [] and any(operation.get("security", [{}])):
                codes |= {"401", "403"}
            if "requestBody" in operation or method in ("post", "put", "patch"):
                codes |= {"413", "415"}
            if operation.get("operationId") in THROTTLED_OPERATIONS:
                codes.add("429")
            responses = operation["responses"]
            for code in sorted(codes | {c for c in responses if c.startswith("4")}):
                entry = responses.setdefault(code, {"description": _DESCRIPTIONS.get(code, "Refused")})
                if "content" not in entry:
                    entry["content"] = _content("ValidationError" if code == "400" else "Error")
    return result
