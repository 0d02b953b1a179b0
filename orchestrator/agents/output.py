"""Text that leaves a tool or goes into a transcript: clipped to a size, and scrubbed of secrets."""

from __future__ import annotations

from collections.abc import Iterable


def clip(text: str, limit: int) -> str:
    """At most about `limit` characters: the head and the tail, with a note of what was cut."""
    if len(text) <= limit:
        return text
    head = max(limit // 2, 1)
    tail = max(limit - head, 0)
    cut = len(text) - head - tail
    end = text[len(text) - tail:] if tail else ""
    return f"{text[:head]}\n[... {cut} characters omitted ...]\n{end}"


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    return text
