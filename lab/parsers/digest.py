"""The digest a checksum tool prints (``md5sum ... | cut``, FreeBSD's ``md5 -q``): 32 hex digits alone."""

from __future__ import annotations

import re

from lab.errors import ParseError
from lab.parsers._text import require_text

_MD5 = re.compile(r"[0-9a-f]{32}")


def parse_md5(text: str) -> str:
    """The md5 digest, lower case; ParseError unless the output is 32 hex digits and nothing else."""
    digest = require_text(text, tool="md5").strip().lower()
    if not _MD5.fullmatch(digest):
        raise ParseError(f"md5: expected 32 hex digits alone, got {digest[:80]!r}")
    return digest
