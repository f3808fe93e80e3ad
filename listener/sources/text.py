"""Platform text to plain text: sanitized HTML (Mastodon, feeds), entities, custom emoji codes."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_BLOCK = frozenset({"p", "div", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "tr"})
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_EMOJI_CODE = re.compile(r"(?<!\w):[A-Za-z0-9_]{2,}:(?!\w)")


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment: paragraphs as blank lines, entities decoded."""
    if "<" not in markup:
        return html.unescape(markup).strip()
    parser = _TextParser()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def strip_emoji_codes(text: str) -> str:
    """Drop Mastodon's `:shortcode:` custom emoji, which VADER would read as words."""
    lines = (_SPACES.sub(" ", line).strip() for line in _EMOJI_CODE.sub("", text).split("\n"))
    return "\n".join(lines).strip()
