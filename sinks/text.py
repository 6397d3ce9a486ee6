"""Event text made inert for the place it is shown.

Alert summaries, labels and titles carry strings an unauthenticated publisher
chose (a model id, a principal id, a resource id). Shown as they are, they become
markup: ``<!channel>`` pings a Slack channel, ``<https://evil|https://sso>`` is a
disguised link, an escape sequence recolours or rewrites a terminal, a bidi
override reverses what a reader sees. Every receiver passes such text through
one of these functions at the moment it renders it, so stored data stays exactly
what arrived and only its display is neutralised.

>>> mrkdwn("<!channel> & <https://evil.example|https://sso.corp.example>")
'&lt;!channel&gt; &amp; &lt;https://evil.example|https://sso.corp.example&gt;'
>>> printable("red\\x1b[31m alert\\u202e")
'red\\\\x1b[31m alert\\\\u202e'
>>> code("a`b") == "`a\u02cbb`"
True

Evidence shown as a command line is quoted for the shell (``shell_command``); the
SQL inside it quotes values as ClickHouse string literals
(:func:`alerting.annotate.sql_string`).
"""

from __future__ import annotations

import re
import shlex

_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
"""C0/C1 controls (escape sequences), bidi overrides and isolates, zero-width characters."""

_GRAVE = "\u02cb"
"""A modifier letter that looks like a backquote and ends no code span."""

_SHELL_ACTIVE = re.compile(r"[$`\\\"!\n]")
_LINK_SAFE = re.compile(r"https?://[^\s<>|`\"]+")


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` with every control or invisible character spelled out (``\\x1b``, ``\\u202e``)."""
    if keep_newlines:
        return "\n".join(_INVISIBLE.sub(_visible, line) for line in text.split("\n"))
    return _INVISIBLE.sub(_visible, text.replace("\n", "\\n"))


def mrkdwn(text: str, keep_newlines: bool = False) -> str:
    """Text for Slack ``mrkdwn``: no mentions, links or channel pings can form."""
    shown = printable(text, keep_newlines)
    return shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """An inline code span that text cannot close early."""
    return "`" + mrkdwn(text).replace("`", _GRAVE) + "`"


def code_block(text: str) -> str:
    """A preformatted block (```...```) that text cannot close early."""
    return "```" + mrkdwn(text).replace("```", _GRAVE * 3) + "```"


def link(url: str) -> str:
    """A Slack link for an http(s) URL that is one piece; anything else is shown as text."""
    if _LINK_SAFE.fullmatch(url):
        return f"<{url.replace('&', '&amp;')}>"
    return mrkdwn(url)


def shell_command(query: str) -> str:
    """The ``vigil sql`` line that runs ``query``, quoted so a shell runs nothing else.

    Double quotes read best and suit the usual query; text a shell would expand
    inside them (``$``, backquotes, backslashes, ``"``, ``!``) switches to single
    quotes, inside which nothing is expanded.

    >>> print(shell_command("SELECT 1 WHERE stage = 'policy'"))
    vigil sql "SELECT 1 WHERE stage = 'policy'"
    >>> print(shell_command("SELECT '$(touch x)'"))
    vigil sql 'SELECT '"'"'$(touch x)'"'"''
    """
    if _SHELL_ACTIVE.search(query) is None:
        return f'vigil sql "{query}"'
    return "vigil sql " + shlex.quote(query)
