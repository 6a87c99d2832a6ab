"""POST a JSON body, read a JSON object back: the one HTTP call the server backends make.

Standard library only. Every way the call can fail (connection refused, timeout, an
HTTP error status, a body that is not a JSON object) becomes a ModelError that names
the backend and the URL, so ``doubleedge serve`` can answer a clear 502.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from doubleedge.models.base import ModelError

DEFAULT_TIMEOUT = 120.0
TIMEOUT_ENV = "DOUBLEEDGE_MODEL_TIMEOUT"
_SNIPPET = 300  # characters of a bad body quoted in an error


def default_timeout() -> float:
    """Seconds to wait for a reply: ``$DOUBLEEDGE_MODEL_TIMEOUT`` or 120 (small models on 2 cores are slow)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        timeout = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds, not {raw!r}") from None
    if timeout <= 0:
        raise ValueError(f"{TIMEOUT_ENV} must be positive, not {raw!r}")
    return timeout


def check_http_url(url: str, what: str) -> str:
    """``url`` without a trailing slash, or a ValueError if it is not an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{what} must be an http:// or https:// URL with a host, not {url!r}")
    return url.rstrip("/")


def post_json(backend: str, url: str, payload: dict, *, timeout: float, headers: dict[str, str] | None = None) -> dict:
    """POST ``payload`` as JSON to ``url`` and return the JSON object it answers."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "Accept": "application/json", **(headers or {})},
        method="POST",
    )
    where = f"{backend} backend at {url}"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc.read())
        raise ModelError(f"{where} answered HTTP {exc.code} {exc.reason}: {detail}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _timeout(where, timeout) from None
        if isinstance(exc.reason, ConnectionRefusedError):
            raise ModelError(f"cannot connect to the {where}: connection refused (is the server running?)") from None
        raise ModelError(f"cannot reach the {where}: {exc.reason}") from None
    except TimeoutError:  # the connection was made but the reply did not come in time
        raise _timeout(where, timeout) from None
    except (OSError, http.client.HTTPException) as exc:  # e.g. the server closed the connection mid-reply
        raise ModelError(f"lost the connection to the {where}: {exc}") from None
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{where} did not answer JSON: {_snippet(body)}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{where} answered JSON that is not an object: {_snippet(body)}")
    return data


def _timeout(where: str, timeout: float) -> ModelError:
    return ModelError(f"no reply from the {where} within {timeout:g} s (raise {TIMEOUT_ENV} for a slow model)")


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return repr(text[:_SNIPPET] + ("..." if len(text) > _SNIPPET else "")) if text else "an empty body"


def _error_detail(body: bytes) -> str:
    """The message in an error body: OpenAI's ``{"error": {"message"}}``, Ollama's ``{"error"}``, or the raw text."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _snippet(body)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):
        return error
    if isinstance(data, dict) and isinstance(data.get("detail"), str):  # FastAPI-based servers
        return data["detail"]
    return _snippet(body)
