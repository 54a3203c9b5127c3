"""Errors at the LLM boundary in our own words: what failed, why, and whether retrying can help.

Transport failures that cannot heal by waiting — connection refused, unknown host, TLS
failure, 401/403, 404 (unknown model or path), a 200 that is not a chat completion — become
:class:`~annotator.errors.EndpointError` naming the cause and the endpoint URL (credentials in the
URL are redacted; the key is never included). Everything else keeps the transient/permanent
split the retry layers rely on.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlparse, urlunparse

import openai
from pydantic import ValidationError

from annotator.errors import AuthError, EndpointError, ResponseError, TransportError

_SECRET_PARAM = re.compile(r"key|token|secret|pass|sig|auth|credential", re.IGNORECASE)


def redact(url: str | None) -> str:
    """The URL as it may be shown (``https://api.openai.com/v1`` when None).

    ``user:password@`` becomes ``***@`` and secret-looking query values (``?api_key=``, ``token``,
    ``sig``, ...) become ``***``.
    """
    parsed = urlparse(url or "https://api.openai.com/v1")
    if parsed.username or parsed.password:
        host = parsed.hostname or ""
        parsed = parsed._replace(netloc=f"***@{host}" + (f":{parsed.port}" if parsed.port else ""))
    if parsed.query:
        pairs = parse_qsl(parsed.query, keep_blank_values=True)
        parsed = parsed._replace(query=urlencode([(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs],
                                                 safe="*"))
    return urlunparse(parsed)


def url_credentials(url: str | None, api_key: str | None) -> tuple[str | None, dict[str, str] | None]:
    """Move ``user:password@`` out of the base URL into HTTP Basic auth (the transport refuses both).

    Raises:
        EndpointError: the URL carries credentials and an API key is set too (one must go).
    """
    if not url:
        return url, None
    parsed = urlparse(url)
    if not (parsed.username or parsed.password):
        return url, None
    if api_key:
        raise EndpointError(f"{redact(url)} carries credentials and an API key is set: keep one of them")
    token = base64.b64encode(f"{unquote(parsed.username or '')}:{unquote(parsed.password or '')}".encode()).decode()
    host = (parsed.hostname or "") + (f":{parsed.port}" if parsed.port else "")
    return urlunparse(parsed._replace(netloc=host)), {"Authorization": f"Basic {token}"}


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return out


def hard_connection_error(exc: BaseException) -> str | None:
    """``connection refused`` / ``unknown host`` / ``TLS failure`` when no retry can help, else None."""
    if not isinstance(exc, openai.APIConnectionError):  # the SDK reports a refused connect as a timeout too
        return None
    chain = _chain(exc)
    texts = [str(c).lower() for c in chain]
    if any(isinstance(c, ConnectionRefusedError) for c in chain) or any("errno 111" in t for t in texts):
        return "connection refused"
    dns = ("name or service not known", "nodename nor servname", "temporary failure in name resolution",
           "no address associated with hostname")
    if any(isinstance(c, socket.gaierror) for c in chain) or any(d in t for t in texts for d in dns):
        return "unknown host"
    if any(isinstance(c, (ValueError, TypeError)) and not isinstance(c, OSError) for c in chain[1:]):
        return f"cannot send requests ({short(str(chain[-1]), 120)})"
    tls = ("certificate verify failed", "[ssl", "wrong version number", "tlsv1 alert", "ssl handshake")
    if any(isinstance(c, ssl.SSLError) for c in chain) or any(m in t for t in texts for m in tls):
        return "TLS failure"
    return None


def translate(exc: BaseException, config: Any) -> Exception:
    """Our error for anything the SDK or instructor raised."""
    url = redact(getattr(config, "base_url", None))
    if isinstance(exc, (AuthError, EndpointError, TransportError, ResponseError)):
        return exc
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return AuthError(f"{url} refused the credentials ({exc.status_code}): check the API key")
    if isinstance(exc, openai.NotFoundError):
        return EndpointError(f"{url} answered 404 ({short(exc.message, 120)}): unknown model "
                             f"{getattr(config, 'model', '?')!r} or wrong path (is it the /v1 root?)")
    if isinstance(exc, openai.APIStatusError):
        return TransportError(f"HTTP {exc.status_code}: {short(exc.message)}")
    hard = hard_connection_error(exc)
    if hard:
        return EndpointError(f"{hard}: {url}")
    if isinstance(exc, openai.APITimeoutError):
        return TransportError("request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return TransportError(f"connection failed: {short(str(exc.__cause__ or exc))}")
    if isinstance(exc, ValidationError):
        return ResponseError(f"invalid answer: {validation_summary(exc)}")
    return ResponseError(f"invalid answer: {short(str(exc))}")


def validation_summary(exc: ValidationError) -> str:
    """``task_type='dancing' is not a taxonomy label; ...`` (short, one line)."""
    parts = []
    for err in exc.errors()[:4]:
        where = ".".join(str(p) for p in err["loc"]) or "answer"
        value = repr(err.get("input"))[:60]
        what = "is not a taxonomy label" if err["type"] == "literal_error" else short(err["msg"], 80)
        parts.append(f"{where}={value} {what}" if err["type"] != "missing" else f"{where} missing")
    return "; ".join(parts)


def short(text: str, limit: int = 300) -> str:
    """One line, at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."




def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` / ``retry-after``), if any."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    value = response.headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None


