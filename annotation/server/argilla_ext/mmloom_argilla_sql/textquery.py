"""Text analysis and query translation for the SQL search engine (pure Python, no imports).

Argilla's Elasticsearch engine indexes record fields with the ``standard`` analyzer and
searches them with a ``simple_query_string`` query (``default_operator: AND``). This module
reproduces both on top of SQLite FTS5:

* :func:`tokenize` approximates Lucene's StandardTokenizer (Unicode word boundaries,
  UAX #29): words keep inner apostrophes, periods and colons (``don't``, ``u.s.a``), numbers
  keep inner commas and periods (``3.14``, ``1,000``), underscores join, Han and Hiragana
  characters are single tokens, everything is lower-cased and diacritics are kept.
  Documents are stored pre-tokenized (tokens joined by spaces), and the FTS5 table uses a
  ``unicode61`` tokenizer whose token characters include those joiners, so FTS5 sees
  exactly these tokens.
* :func:`compile_query` parses the ``simple_query_string`` syntax (``+`` and, ``|`` or,
  ``-`` not, ``"phrases"``, ``prefix*``, parentheses, ``\\`` escapes; ``~N`` fuzziness and
  slop are accepted and ignored) with Lucene's left-to-right operator handling, and returns
  an FTS5 expression plus whether the matches are the result (``pos``) or must be
  subtracted from all records (``neg``; ES turns purely negative queries into
  "everything except").

Example:
    >>> compile_query('cat | "big dog" -bird*')
    CompiledQuery(kind='pos', fts='(("cat") OR ("big dog")) NOT ("bird"*)')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Characters FTS5 must treat as part of a token (they only ever occur inside our tokens).
FTS_TOKENCHARS = "_.'’:,;"
FTS_TOKENIZE = (
    "unicode61 remove_diacritics 0 tokenchars '" + FTS_TOKENCHARS.replace("'", "''") + "'"
)

_CJK = "\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = rf"[^\W{_CJK}]+"
_TOKEN_RE = re.compile(
    rf"[{_CJK}]"  # one ideograph / hiragana per token, like StandardTokenizer
    rf"|{_WORD}(?:(?:[.'’]|(?<=[^\W\d_])[:](?=[^\W\d_])|(?<=\d)[,;](?=\d)){_WORD})*"
)


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-cased tokens the way Elasticsearch's standard analyzer does.

    Args:
        text: any string (field content).

    Returns:
        The tokens in order; empty for text without letters or digits.
    """
    return [token.lower() for token in _TOKEN_RE.findall(text)]


def document_text(text: str) -> str:
    """Return ``text`` pre-tokenized for the FTS5 table (tokens joined by single spaces)."""
    return " ".join(tokenize(text))


@dataclass(frozen=True)
class CompiledQuery:
    """An FTS5 MATCH expression and how to apply it.

    Attributes:
        kind: ``pos`` (records matching ``fts``), ``neg`` (records NOT matching ``fts``) or
            ``none`` (the query has no searchable terms and matches nothing).
        fts: the FTS5 expression (empty for ``none``).
    """

    kind: str
    fts: str = ""


_SPECIAL = set('+|-"()*~\\')


def _lex(query: str) -> list[tuple[str, str]]:
    """Split a simple_query_string into (kind, text) lexemes."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            out.append(("ws", ch))
            i += 1
        elif ch in "+|()":
            out.append((ch, ch))
            i += 1
        elif ch == "-" and (not out or out[-1][0] in ("ws", "+", "|", "(")):
            out.append(("-", ch))
            i += 1
        elif ch == '"':
            j = i + 1
            buf = []
            while j < n and query[j] != '"':
                if query[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(query[j])
                j += 1
            out.append(("phrase", "".join(buf)))
            i = j + 1
        elif ch == "~":
            j = i + 1
            while j < n and query[j].isdigit():
                j += 1
            i = j  # fuzziness / slop: accepted, ignored
        else:
            j = i
            buf = []
            while j < n and not query[j].isspace() and query[j] not in '+|()"~':
                if query[j] == "\\" and j + 1 < n:
                    j += 1
                    buf.append(query[j])
                else:
                    buf.append(query[j])
                j += 1
            word = "".join(buf)
            if word.endswith("*"):
                out.append(("prefix", word.rstrip("*")))
            else:
                out.append(("word", word))
            i = j
    return out


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def _leaf(kind: str, text: str) -> tuple[str, str] | None:
    tokens = tokenize(text)
    if not tokens:
        return None
    if kind == "phrase":
        return ("pos", _quote(" ".join(tokens)))
    parts = [_quote(t) for t in tokens]
    if kind == "prefix":
        parts[-1] += "*"
    # A word that analyzes to several tokens becomes a conjunction (default operator AND).
    return ("pos", parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")")


def _negate(node: tuple[str, str]) -> tuple[str, str]:
    return ("neg" if node[0] == "pos" else "pos", node[1])


def _combine(op: str, a: tuple[str, str], b: tuple[str, str]) -> tuple[str, str]:
    (ka, fa), (kb, fb) = a, b
    if op == "and":
        if ka == "pos" and kb == "pos":
            return ("pos", f"({fa}) AND ({fb})")
        if ka == "pos":
            return ("pos", f"({fa}) NOT ({fb})")
        if kb == "pos":
            return ("pos", f"({fb}) NOT ({fa})")
        return ("neg", f"({fa}) OR ({fb})")
    if ka == "pos" and kb == "pos":
        return ("pos", f"({fa}) OR ({fb})")
    if ka == "neg" and kb == "neg":
        return ("neg", f"({fa}) AND ({fb})")
    # pos OR not(x) == not(x AND NOT pos)
    pos, neg = (fa, fb) if ka == "pos" else (fb, fa)
    return ("neg", f"({neg}) NOT ({pos})")


def _parse(lexemes: list[tuple[str, str]], pos: int) -> tuple[tuple[str, str] | None, int]:
    acc: tuple[str, str] | None = None
    op: str | None = None
    negate = False
    while pos < len(lexemes):
        kind, text = lexemes[pos]
        pos += 1
        if kind == "ws":
            continue
        if kind == ")":
            break
        if kind == "|":
            op = "or"
            continue
        if kind == "+":
            op = "and"
            continue
        if kind == "-":
            negate = True
            continue
        if kind == "(":
            node, pos = _parse(lexemes, pos)
        else:
            node = _leaf(kind, text)
        if node is not None:
            if negate:
                node = _negate(node)
            acc = node if acc is None else _combine(op or "and", acc, node)
        op, negate = None, False
    return acc, pos


def compile_query(query: str) -> CompiledQuery:
    """Translate an Elasticsearch ``simple_query_string`` into an FTS5 expression.

    Args:
        query: the user's search text.

    Returns:
        A :class:`CompiledQuery`; ``kind == "none"`` when no term survives analysis.
    """
    lexemes = _lex(query)
    node, pos = _parse(lexemes, 0)
    while pos < len(lexemes):  # an unbalanced ")" ends a group early; parse on after it
        more, pos = _parse(lexemes, pos)
        if more is not None:
            node = more if node is None else _combine("and", node, more)
    if node is None:
        return CompiledQuery("none")
    return CompiledQuery(node[0], node[1])


def restrict_to_column(fts: str, column: str) -> str:
    """Return ``fts`` limited to one FTS5 column (``{column} : (expr)``)."""
    return "{" + column + "} : (" + fts + ")"
