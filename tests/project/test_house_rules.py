"""The house rules that a reading of the source can check (docs/design.md): no module
imports another module's private name, no class outside the emulator holds more than 14
attributes, ttstream imports httpx2 and never httpx, the code cites only the
repository's own documents, the user docs name public paths only, and a class's
docstrings name only members the class has, JSON text is parsed through the one
loader whose nesting is bounded, and a public module lists each public class it defines
in its ``__all__``."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PACKAGE = ROOT / "ttstream"
SOURCES = sorted(PACKAGE.rglob("*.py"))
MAX_ATTRIBUTES = 14


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def private_imports(path: Path) -> list[str]:
    """``from .x import _y`` (or ``from ttstream.x import _y``): a private name of
    another module."""
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").startswith("ttstream")
        ):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{_name(path)}:{node.lineno} imports {alias.name}")
    return found


def instance_attributes(cls: ast.ClassDef) -> set[str]:
    """The names a class's methods assign on ``self``, its annotated class-level fields
    (attrs) and its ``__slots__``; not its ``ClassVar`` nor its ``Delegated``/``Settable``
    attributes, which hold nothing (views of another object's, as a property is)."""
    names: set[str] = set()
    for node in ast.walk(cls):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                names.add(target.attr)
    for statement in cls.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__slots__"
            for target in statement.targets
        ):
            names.update(ast.literal_eval(statement.value))
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and not ast.unparse(statement.annotation).startswith(
                ("ClassVar", "Delegated[", "Settable[")
            )
        ):
            names.add(statement.target.id)
    return names


def test_no_module_imports_a_private_name_of_another() -> None:
    assert [hit for path in SOURCES for hit in private_imports(path)] == []


def found_in_sample(source: str, check: Callable[[Path], list[str]]) -> list[str]:
    """What ``check`` finds in a module of ``source`` (written under ``tests/`` for the
    time of the check, so that its path reads as the repository's)."""
    sample = PACKAGE.parent / "tests" / "_sample_module.py"
    try:
        sample.write_text(source)
        return check(sample)
    finally:
        sample.unlink()


def test_a_private_import_is_found() -> None:
    """The check above can fail: it sees a private import where there is one."""
    assert found_in_sample("from ttstream.events import _secret\n", private_imports) != []


def json_parsers(path: Path) -> list[str]:
    """What parses JSON text other than through ``ttstream._json.loads``: a call of
    ``json.loads`` or ``json.load``, a decoder's ``raw_decode``, any mention of
    ``JSONDecoder`` (a decoder made, however it is then called), and ``load``,
    ``loads`` or ``JSONDecoder`` imported from ``json``. Each would follow a hostile
    nesting down to Python's recursion limit."""
    found = []
    for node in ast.walk(_tree(path)):
        what = ""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            call = node.func
            module = call.value.id if isinstance(call.value, ast.Name) else ""
            if call.attr == "raw_decode" or (call.attr in ("load", "loads") and module == "json"):
                what = call.attr
        elif isinstance(node, ast.Attribute | ast.Name):
            name = node.attr if isinstance(node, ast.Attribute) else node.id
            what = "JSONDecoder" if name == "JSONDecoder" else ""
        elif isinstance(node, ast.ImportFrom) and node.module == "json":
            names = {alias.name for alias in node.names} & {"load", "loads", "JSONDecoder"}
            what = ", ".join(sorted(names))
        if what:
            found.append(f"{_name(path)}:{node.lineno} {what}")
    return found


def test_json_text_is_parsed_through_the_bounded_loader_only() -> None:
    found = [hit for path in SOURCES for hit in json_parsers(path)]
    # ttstream/_json.py is the loader; the image line's decoder parses its head and tail
    # members, checked with ttstream._json.too_deep before each raw_decode
    assert sorted(re.sub(r":\d+ ", " ", hit) for hit in found) == [  # without line numbers
        "ttstream/_imageline.py JSONDecoder",
        "ttstream/_imageline.py raw_decode",
        "ttstream/_imageline.py raw_decode",
        "ttstream/_json.py loads",
    ]


def test_a_json_parser_is_found() -> None:
    """The check above can fail: it sees a ``json.loads`` where there is one, a decoder
    however it is made and called, and a parser imported from ``json``; not a
    ``bytes.decode``."""
    assert found_in_sample("import json\njson.loads('[]')\n", json_parsers) != []
    for source in (
        "import json\n_D: json.JSONDecoder = json.JSONDecoder()\n_D.decode('[]')\n",
        "from json import JSONDecoder\nparse = JSONDecoder().decode\n",
        "from json import loads\nloads('[]')\n",
    ):
        assert found_in_sample(source, json_parsers) != [], source
    assert found_in_sample("b''.decode()\n", json_parsers) == []


API_RECORDS = {"ttstream/events.py:Completed"}
"""Frozen records whose fields are the API's own event fields (a public contract,
docs/design.md, "Records that mirror the wire"): they hold no state of ours, so the
count does not apply; every other class, the records' subclasses included, keeps it."""


def class_index() -> dict[str, list[tuple[str, ast.ClassDef]]]:
    """Every class of the package by name: ``(module path, class)`` pairs."""
    index: dict[str, list[tuple[str, ast.ClassDef]]] = {}
    for path in SOURCES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ClassDef):
                index.setdefault(node.name, []).append((_name(path), node))
    return index


def inherited_attributes(
    module: str, cls: ast.ClassDef, index: dict[str, list[tuple[str, ast.ClassDef]]]
) -> set[str]:
    """:func:`instance_attributes` of ``cls`` and of every base class of the package it
    inherits from (its MRO within ttstream): a base defined in the same module first,
    else the one class of that name."""
    names = instance_attributes(cls)
    for base in cls.bases:
        base_name = ast.unparse(base).split("[")[0].rsplit(".", 1)[-1]
        found = index.get(base_name, [])
        same_module = [entry for entry in found if entry[0] == module]
        chosen = same_module or (found if len(found) == 1 else [])
        for base_module, base_cls in chosen:
            if base_cls is not cls:
                names |= inherited_attributes(base_module, base_cls, index)
    return names


def is_typed_dict(cls: ast.ClassDef, index: dict[str, list[tuple[str, ast.ClassDef]]]) -> bool:
    """Whether ``cls`` is a ``TypedDict``, directly or through the package's bases."""
    for base in cls.bases:
        name = ast.unparse(base).rsplit(".", 1)[-1]
        if name == "TypedDict" or any(
            other is not cls and is_typed_dict(other, index) for _, other in index.get(name, [])
        ):
            return True
    return False


def crowded_classes(max_attributes: int = MAX_ATTRIBUTES) -> list[str]:
    index = class_index()
    crowded = []
    for entries in index.values():
        for module, node in entries:
            if "emulator" in module or f"{module}:{node.name}" in API_RECORDS:
                continue
            # A TypedDict lists a mapping's keys (the API's parameters), not an object's state.
            if is_typed_dict(node, index):
                continue
            count = len(inherited_attributes(module, node, index))
            if count > max_attributes:
                crowded.append(f"{module}:{node.name} has {count}")
    return sorted(crowded)


def test_no_class_outside_the_emulator_holds_more_than_14_attributes() -> None:
    """Counted with the attributes each class inherits from the package's classes, so
    that a subclass cannot go over by adding to a full base."""
    assert crowded_classes() == []


def test_inherited_attributes_are_counted() -> None:
    tree = ast.parse(
        "class A:\n    def __init__(self):\n        self.a = self.b = 1\n"
        "class B(A):\n    def f(self):\n        self.c = 1\n"
    )
    base, sub = tree.body
    index = {"A": [("m.py", base)], "B": [("m.py", sub)]}
    assert inherited_attributes("m.py", sub, index) == {"a", "b", "c"}  # type: ignore[arg-type]


def test_the_live_instances_keep_the_count() -> None:
    """The instances of the classes users build most hold what the source says."""
    import attrs

    import ttstream

    azure = ttstream.AsyncAzureClient(
        api_key="k",
        azure_endpoint="https://example.invalid",
        azure_deployment="d",
        api_version="2025-04-01-preview",
    )
    assert len(vars(azure)) <= MAX_ATTRIBUTES
    assert all(
        len(attrs.fields(cls)) <= MAX_ATTRIBUTES
        for cls in (ttstream.PartialImage, ttstream.Usage, ttstream.ReconnectPolicy)
    )


def test_attributes_are_counted() -> None:
    cls = ast.parse(
        "class A:\n    x: int\n    def f(self):\n        self.y = 1\n        self.y += 1\n"
        "    z: Delegated[int] = Delegated('y')\n"
    )
    assert instance_attributes(cls.body[0]) == {"x", "y"}  # type: ignore[arg-type]
    slotted = ast.parse("class B:\n    __slots__ = ('_a', 'b')\n")
    assert instance_attributes(slotted.body[0]) == {"_a", "b"}  # type: ignore[arg-type]


@pytest.mark.parametrize("path", SOURCES, ids=_name)
def test_ttstream_imports_httpx2_never_httpx(path: Path) -> None:
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            assert all(alias.name.split(".")[0] != "httpx" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            assert node.module.split(".")[0] != "httpx", f"{_name(path)}:{node.lineno}"


def test_the_code_cites_only_the_repositorys_documents() -> None:
    cited = [
        _name(path)
        for path in SOURCES
        if "wire-format.md" in path.read_text() or "DESIGN.md" in path.read_text()
    ]
    assert cited == []


DOCS = PACKAGE.parent / "docs"
USER_PAGES = [
    PACKAGE.parent / "README.md",
    *sorted(
        page
        for page in DOCS.rglob("*.md")
        # design.md describes the layers by their modules; the reference is generated
        if page.name != "design.md" and page.relative_to(DOCS).parts[0] != "reference"
    ),
]
PRIVATE_PATH = re.compile(r"\bttstream(?:\.[A-Za-z]\w*)*\._(?!_)\w*")


def private_paths(text: str) -> list[str]:
    """``ttstream._x`` or ``ttstream.sinks._y`` (not ``ttstream.__version__``)."""
    return PRIVATE_PATH.findall(text)


def test_the_user_docs_name_no_private_module() -> None:
    found = {
        str(page.relative_to(PACKAGE.parent)): paths
        for page in USER_PAGES
        if (paths := private_paths(page.read_text()))
    }
    assert found == {}


def test_a_private_path_is_found() -> None:
    text = "see `ttstream._secrets` and ttstream.sinks._relay.SSERelay, not ttstream.__version__"
    assert private_paths(text) == ["ttstream._secrets", "ttstream.sinks._relay"]
    assert private_paths("ttstream.sinks.SSERelay and ttstream_emulator") == []
    assert len(USER_PAGES) > 10


MEMBER_ROLE = re.compile(r":(?:meth|attr):`~?([A-Za-z_]\w*)`")


def missing_members(tree: ast.Module) -> list[str]:
    """The bare names (``:meth:`check```, not ``:meth:`Other.check```) that the
    docstrings of a class and of its methods give as its members, and that the class
    does not define: a method, an attribute set on ``self``, or a name of its body."""
    found = []
    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        members: set[str] = set()
        for node in ast.walk(cls):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                members.add(node.name)
            elif isinstance(node, ast.Attribute) and ast.unparse(node.value) == "self":
                members.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                members.add(node.id)
        for node in ast.walk(cls):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                for name in MEMBER_ROLE.findall(ast.get_docstring(node) or ""):
                    if name not in members:
                        found.append(f"{cls.name}.{node.name} names {name}")
    return found


def test_a_class_docstring_names_only_members_it_has() -> None:
    found = [f"{_name(path)}: {hit}" for path in SOURCES for hit in missing_members(_tree(path))]
    assert found == []


def test_a_missing_member_is_found() -> None:
    tree = ast.parse(
        'class Deadline:\n    """After a step, :meth:`check` raises; :meth:`scope` runs it."""\n'
        "    def scope(self): ...\n"
    )
    assert missing_members(tree) == ["Deadline.Deadline names check"]


PUBLIC_MODULES = [
    path
    for path in SOURCES
    if not any(
        part.startswith("_") and part != "__init__"
        for part in path.relative_to(PACKAGE.parent).with_suffix("").parts
    )
]


def unlisted_classes(tree: ast.Module) -> list[str]:
    """The public classes a module defines and leaves out of its ``__all__`` (all of
    them when it has none). In a public module each is API; a class other modules share
    that is no part of the API is private, or lives in a private module."""
    listed: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and "__all__" in {
            ast.unparse(target)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        }:
            assert node.value is not None
            listed = set(ast.literal_eval(node.value))
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and not node.name.startswith("_")
        and node.name not in listed
    ]


def test_a_public_module_lists_each_public_class_in_its_all() -> None:
    found = [
        f"{_name(path)}: {name}"
        for path in PUBLIC_MODULES
        for name in unlisted_classes(_tree(path))
    ]
    assert found == []


def test_an_unlisted_class_is_found() -> None:
    tree = ast.parse('__all__ = ["Batch"]\nclass Batch: ...\nclass Tally: ...\nclass _Job: ...\n')
    assert unlisted_classes(tree) == ["Tally"]
    assert unlisted_classes(ast.parse("class Tally: ...\n")) == ["Tally"]
    names = {_name(path) for path in PUBLIC_MODULES}
    assert {"ttstream/batch.py", "ttstream/sinks/__init__.py"} <= names
    assert "ttstream/_tally.py" not in names
