"""Kubernetes `Status` errors: every failure a client sees is one of these, with the real code."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as a `Status` object (kind Status, status Failure)."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(name: str, group: str, kind: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        d["group"] = group
    return d


def qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _about(
    code: int, reason: str, resource: str, group: str, name: str, text: str, lead: str = ""
) -> ApiError:
    """An error about one named object, worded as the real server does:
    `<lead><resource>.<group> "<name>"<text>`."""
    message = f'{lead}{qualified(resource, group)} "{name}"{text}'
    return ApiError(code, reason, message, details=_details(name, group, resource))


def not_found(resource: str, group: str, name: str) -> ApiError:
    return _about(404, "NotFound", resource, group, name, " not found")


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return _about(409, "AlreadyExists", resource, group, name, " already exists")


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    lead = "Operation cannot be fulfilled on "
    return _about(409, "Conflict", resource, group, name, f": {why}", lead)


def stale(resource: str, group: str, name: str) -> ApiError:
    return conflict(
        resource,
        group,
        name,
        "the object has been modified; please apply your changes to the latest version and "
        "try again",
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unsupported_media(content_type: str, allowed: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(allowed)}"
        if content_type
        else "missing content type",
    )


def method_not_allowed(verb: str, resource: str) -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", f"{verb} is not supported on resources of kind {resource}"
    )


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


class FieldError:
    """One validation failure, formatted as the real server does (`path: Type: detail`)."""

    __slots__ = ("detail", "field", "kind", "value")

    def __init__(self, field: str, kind: str, detail: str = "", value: Any = None) -> None:
        self.field = field
        self.kind = kind  # "Invalid value", "Required value", "Unsupported value", ...
        self.detail = detail
        self.value = value

    @property
    def reason(self) -> str:
        return {
            "Invalid value": "FieldValueInvalid",
            "Required value": "FieldValueRequired",
            "Unsupported value": "FieldValueNotSupported",
            "Forbidden": "FieldValueForbidden",
            "Duplicate value": "FieldValueDuplicate",
            "Too long": "FieldValueTooLong",
            "Too many": "FieldValueTooMany",
            "Not found": "FieldValueNotFound",
        }.get(self.kind, "FieldValueInvalid")

    def __str__(self) -> str:
        text = f"{self.field}: {self.kind}"
        if self.kind in ("Invalid value", "Unsupported value", "Duplicate value"):
            text += f": {_render(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text


def _render(value: Any) -> str:
    import json

    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return "null"
    return (
        f'"{type(value).__name__}"'
        if not isinstance(value, (dict, list))
        else ('"object"' if isinstance(value, dict) else '"array"')
    )


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid with every cause, like `Service "x" is invalid: [a, b]`."""
    texts = [str(e) for e in errors]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{qualified(kind, group)} "{name}" is invalid: {joined}',
        details={
            **_details(name, group, kind),
            "causes": [
                {"reason": e.reason, "message": str(e)[len(e.field) + 2 :], "field": e.field}
                for e in errors
            ],
        },
    )
