"""HTML stripping with the standard library's `html.parser`, lenient and linear-time.

>>> strip_markup("<b>Fish</b> &amp; chips")
'Fish & chips'
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from .normalize import normalize_whitespace

__all__ = ["MarkupError", "strip_markup"]

_HTML_TAGS = frozenset(
    """a abbr address area article aside audio b base bdi bdo blockquote body br button canvas
    caption center cite code col colgroup data datalist dd del details dfn dialog div dl dt em
    embed fieldset figcaption figure font footer form h1 h2 h3 h4 h5 h6 head header hr html i
    iframe img input ins kbd label legend li link main map mark meta meter nav noscript object
    ol optgroup option output p param picture pre progress q rp rt ruby s samp script section
    select small source span strike strong style sub summary sup svg table tbody td template
    textarea tfoot th thead time title tr track tt u ul var video wbr""".split()  # noqa: SIM905
)
_BLOCK_TAGS = frozenset(
    """address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3
    h4 h5 h6 header hr li main nav ol p pre section table tbody tfoot thead tr ul""".split()  # noqa: SIM905
)
_CELL_TAGS = frozenset({"td", "th"})
_HIDDEN_TAGS = frozenset({"script", "style", "template"})


class _TextExtractor(HTMLParser):
    """Text of an HTML fragment: entities decoded, script/style dropped, blocks on new lines.

    Tags that are not HTML elements (``List<String>``, ``x<y and z>w``) are kept as text.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden += 1
        else:
            self._tag(tag, self.get_starttag_text() or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        else:
            self._tag(tag, f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)

    def _tag(self, tag: str, raw: str) -> None:
        if self.hidden:
            return
        if tag in _BLOCK_TAGS:
            if self.parts and not self.parts[-1].endswith("\n"):
                self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")
        elif tag not in _HTML_TAGS:
            self.parts.append(raw)


_TAG = r"""<(?:[a-zA-Z?]|/[a-zA-Z]|![a-zA-Z])(?:[^<>"']|"[^<"]*"|'[^<']*')*>"""
_TAG_OR_BRACKET = re.compile(f"{_TAG}|<")
_COMMENT_TAG_OR_BRACKET = re.compile(f"<!--.*?-->|{_TAG}|<", re.DOTALL)


def _escape_stray_brackets(text: str) -> str:
    """Escape each "<" that opens no complete tag or comment, in linear time.

    `HTMLParser` rescans the rest of the text for every unclosed tag, which is quadratic
    on text like ``a<b`` repeated; after this it only ever sees complete tags.

    >>> _escape_stray_brackets("a<b <i>c</i>")
    'a&lt;b <i>c</i>'
    """

    def keep(match: re.Match[str]) -> str:
        return "&lt;" if match.group() == "<" else match.group()

    split = text.rfind("-->") + 3 if "-->" in text else 0  # no comment closes after this
    head = _COMMENT_TAG_OR_BRACKET.sub(keep, text[:split])
    return head + _TAG_OR_BRACKET.sub(keep, text[split:])


class MarkupError(ValueError):
    """`html.parser` failed on a text (strict ``strip_markup``)."""


def strip_markup(text: str, *, strict: bool = False) -> str:
    """Text without HTML tags, comments and script/style contents, entities decoded.

    Uses `html.parser`; block elements become line breaks and whitespace is normalised.
    Text without ``<`` or ``&`` is returned unchanged; a ``<`` that opens no complete tag,
    and tags that are not HTML elements (``List<String>``), stay as they are. Should the
    parser fail, the text is returned as it was, or, with ``strict``, ``MarkupError`` is
    raised (the cleaning pass counts those rows in its report).

    >>> strip_markup("<p>Fish &amp; chips&nbsp;<b>now</b></p><script>x()</script><p>2 < 3</p>")
    'Fish & chips now\\n2 < 3'
    """
    if "<" not in text and "&" not in text:
        return text
    parser = _TextExtractor()
    try:
        parser.feed(_escape_stray_brackets(text))
        parser.close()
    except Exception as exc:  # the parser is lenient, but must never fail a row
        if strict:
            raise MarkupError(f"{type(exc).__name__}: {exc}") from exc
        return text
    return normalize_whitespace("".join(parser.parts))
