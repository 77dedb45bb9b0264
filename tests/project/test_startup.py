"""Start-up: ``import ttstream`` and ``ttstream --version`` import no optional package and
no HTTP stack they do not use; each check runs in a fresh interpreter (a subprocess) and
reads its ``sys.modules``."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

import ttstream
from tests.support.paths import ROOT

HEAVY = (
    "aiohttp", "httpx_aiohttp", "httpx", "rich", "click", "pygments", "starlette", "uvicorn",
    "PIL", "coredis", "opentelemetry",
)  # fmt: skip
CLIENT_STACK = ("httpx2", "httpcore2", "anyio", "ttstream.client", "ttstream._transport")


def imported_after(code: str) -> set[str]:
    """The top-level packages (and ttstream modules) in ``sys.modules`` after ``code``."""
    script = code + textwrap.dedent("""
        import json, sys
        names = {name.split(".")[0] for name in sys.modules}
        names |= {name for name in sys.modules if name.startswith("ttstream")}
        print(json.dumps(sorted(names)))
    """)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import ttstream",
        "from ttstream import *",  # every public name, the client and the sinks included
        "import ttstream.sinks, ttstream.params, ttstream.events, ttstream.sse",
        "import ttstream\nttstream.Client('k').close()",
    ],
)
def test_import_loads_no_optional_package(code: str) -> None:
    assert imported_after(code).isdisjoint(HEAVY)


def test_a_prepared_stream_loads_only_its_telemetry() -> None:
    """A client made, a stream prepared: aiohttp waits for the first request; the
    stream's span (the ``otel`` extra, when installed) is its point of use."""
    code = "import ttstream\nttstream.AsyncClient('k').generate('a kite', partial_images=2)"
    assert imported_after(code).isdisjoint(set(HEAVY) - {"opentelemetry"})


def test_import_ttstream_loads_no_client_stack() -> None:
    assert imported_after("import ttstream").isdisjoint(CLIENT_STACK)


def test_version_loads_no_client_stack(capsys: pytest.CaptureFixture[str]) -> None:
    code = textwrap.dedent("""
        import contextlib, io
        from ttstream.__main__ import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["--version"]) == 0
        assert out.getvalue().startswith("ttstream "), out.getvalue()
    """)
    loaded = imported_after(code)
    assert loaded.isdisjoint(HEAVY)
    assert loaded.isdisjoint(CLIENT_STACK)
    from ttstream.__main__ import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"ttstream {ttstream.__version__}\n"


def test_the_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    assert ttstream.__version__ == version("ttstream")


def test_every_lazy_name_is_the_object_of_its_module() -> None:
    from ttstream import _LAZY  # the table under test

    for name in ttstream.__all__:
        assert getattr(ttstream, name) is not None
    for name, module in _LAZY.items():
        attribute = "VERSION" if name == "__version__" else name
        expected = getattr(importlib.import_module(f"ttstream.{module}"), attribute)
        assert getattr(ttstream, name) is expected
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = ttstream.no_such_name  # type: ignore[attr-defined]


def test_the_type_checking_imports_match_the_lazy_table() -> None:
    """mypy reads the ``TYPE_CHECKING`` imports, the interpreter the table: they agree."""
    from ttstream import _LAZY, _SUBMODULES

    tree = ast.parse((ROOT / "ttstream" / "__init__.py").read_text())
    [block] = [node for node in tree.body if isinstance(node, ast.If)]
    seen: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            seen[alias.asname or alias.name] = node.module or alias.name
    assert seen == {**_LAZY, **{name: name for name in _SUBMODULES}}
    assert set(ttstream.__all__) >= set(seen)


def test_isinstance_works_with_the_event_unions() -> None:
    event = ttstream.Completed(b64_json="", operation="generation")
    assert isinstance(event, ttstream.Event)
    assert isinstance(event, ttstream.StreamItem)
    notice = ttstream.Reconnecting(
        attempt=1, delay=0.0, last_event_id="", regenerating=False, reason="x"
    )
    assert not isinstance(notice, ttstream.Event)
    assert isinstance(notice, ttstream.StreamItem)


def test_the_responses_client_does_not_import_the_client() -> None:
    """No cycle: ``client`` imports ``_responses_client``, which needs only a protocol of
    its client (base URL, HTTP client, auth headers, limits), not ``client`` itself."""
    loaded = imported_after("import ttstream._responses_client")
    assert "ttstream._responses_client" in loaded
    assert "ttstream.client" not in loaded
    source = (ROOT / "ttstream" / "_responses_client.py").read_text()
    assert "._auth_headers" not in source
    assert "._http" not in source


@pytest.mark.parametrize(
    "code", ["import ttstream.redis._codec", "from ttstream.redis import decode_entry"]
)
def test_the_redis_codec_loads_no_io_package(code: str) -> None:
    """The entry codec is core (no I/O): reading it loads neither anyio nor coredis."""
    loaded = imported_after(code)
    assert "ttstream.redis._codec" in loaded
    assert loaded.isdisjoint({"anyio", "coredis", "ttstream.redis._relay"})


def test_every_redis_name_is_the_object_of_its_module() -> None:
    import ttstream.redis
    from ttstream.redis import _LAZY  # the table under test

    assert set(_LAZY) == set(ttstream.redis.__all__)
    for name, module in _LAZY.items():
        expected = getattr(importlib.import_module(f"ttstream.redis.{module}"), name)
        assert getattr(ttstream.redis, name) is expected
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = ttstream.redis.no_such_name  # type: ignore[attr-defined]
