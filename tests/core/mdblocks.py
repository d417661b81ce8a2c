"""Fenced code blocks of Markdown documents, for the tests that run what the docs show."""
from __future__ import annotations


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """Every fenced block of Markdown text as (language, text), in order ('' = no language)."""
    out, cur, lang = [], None, ""
    for line in markdown.splitlines(keepends=True):
        if line.startswith("```"):
            if cur is None:
                cur, lang = [], line[3:].strip()
            else:
                out.append((lang, "".join(cur)))
                cur = None
        elif cur is not None:
            cur.append(line)
    return out
