"""The tools' help texts show their shell examples as written.

A shell line continuation (``\\`` at the end of a line) inside a non-raw Python string is read
as a string line continuation: the backslash and the newline vanish and ``--help`` prints the two
lines joined by a run of spaces, an example a user cannot copy. Examples must write ``\\\\``.
"""

import io
import tokenize
from pathlib import Path

import pytest

TOOLS = sorted((Path(__file__).resolve().parents[2] / "tools").glob("*.py"))


def swallowed_continuations(path: Path):
    """(line number, line) of every line inside a non-raw string literal of ``path`` that ends in
    an odd number of backslashes, i.e. one the Python parser joins with the next line."""
    found = []
    source = path.read_text(encoding="utf-8")
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.STRING:
            continue
        prefix = tok.string[: len(tok.string) - len(tok.string.lstrip("bBrRuUfF"))]
        if "r" in prefix.lower():
            continue
        for offset, line in enumerate(tok.string.split("\n")[:-1]):
            if offset == 0 and line[len(prefix):] in ('"""\\', "'''\\"):
                continue  # '"""\\' right after the quotes: the usual way to skip the first newline
            trailing = len(line) - len(line.rstrip("\\"))
            if trailing % 2 == 1:
                found.append((tok.start[0] + offset, line.strip()))
    return found


def test_tools_exist():
    assert len(TOOLS) >= 10, TOOLS


@pytest.mark.parametrize("path", TOOLS, ids=lambda p: p.name)
def test_no_swallowed_line_continuation_in_help(path):
    assert swallowed_continuations(path) == [], f"{path.name}: write '\\\\' at the end of these example lines"


def test_checker_finds_a_swallowed_continuation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('EPILOG = """\\\n  python x.py --a 1 \\\n      --b 2\n  python y.py \\\\\n      --c 3\n"""\n'
                   'RAW = r"""a \\\nb"""\n', encoding="utf-8")
    assert [n for n, _ in swallowed_continuations(bad)] == [2]
