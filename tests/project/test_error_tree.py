"""The error tree is drawn, not only linked (issue 17, "one exception tree"): the drawings
in docs/design.md, docs/errors.md and at the top of ``ttstream/_exceptions.py`` name
exactly the module's subclasses of ``TTStreamError``, each under its parent class."""

from __future__ import annotations

import inspect
import re

import pytest

import ttstream
import ttstream._exceptions as exceptions
from tests.support.paths import ROOT

_BRANCH = re.compile(r"^(?P<indent>(?:│   |    )*)(?:├── |└── )(?P<name>\w+)")


def drawn_tree(text: str) -> dict[str, str | None]:
    """The first tree drawn in ``text`` (a line ``TTStreamError``, then ``├── `` and
    ``└── `` branches indented four characters a level): each class and its parent."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "TTStreamError")
    margin = len(lines[start]) - len(lines[start].lstrip())  # indented in a docstring
    parents: dict[str, str | None] = {"TTStreamError": None}
    path = ["TTStreamError"]
    for line in lines[start + 1 :]:
        match = _BRANCH.match(line[margin:])
        if match is None:
            break
        depth = len(match["indent"]) // 4 + 1
        del path[depth:]
        parents[match["name"]] = path[depth - 1]
        path.append(match["name"])
    return parents


def actual_tree() -> dict[str, str | None]:
    """Each subclass of ``TTStreamError`` defined in ``ttstream._exceptions`` and its
    parent in the tree: its first base that is one too."""
    tree: dict[str, str | None] = {}
    for name, cls in vars(exceptions).items():
        if (
            inspect.isclass(cls)
            and issubclass(cls, exceptions.TTStreamError)
            and cls.__module__ == exceptions.__name__
        ):
            bases = [base for base in cls.__bases__ if issubclass(base, exceptions.TTStreamError)]
            tree[name] = bases[0].__name__ if bases else None
    return tree


@pytest.mark.parametrize("where", ["docs/design.md", "docs/errors.md", "ttstream/_exceptions.py"])
def test_the_drawn_tree_is_the_module_s_tree(where: str) -> None:
    assert drawn_tree((ROOT / where).read_text()) == actual_tree()


def test_every_class_of_the_tree_is_importable_from_ttstream() -> None:
    assert all(getattr(ttstream, name) is getattr(exceptions, name) for name in actual_tree())


def test_a_misplaced_class_is_seen() -> None:
    """The check can fail: a class drawn under the wrong parent, or left out."""
    good = "TTStreamError\n├── APIError\n│   └── StreamError\n└── ProtocolError\n"
    assert drawn_tree(good) == {
        "TTStreamError": None,
        "APIError": "TTStreamError",
        "StreamError": "APIError",
        "ProtocolError": "TTStreamError",
    }
    moved = "TTStreamError\n├── APIError\n└── StreamError\n"
    assert drawn_tree(moved)["StreamError"] == "TTStreamError"
