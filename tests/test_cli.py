"""The ``ttstream`` command: options, files, error lines for people, safe printing.

In-process runs (``cli.main``) write to a captured, non-terminal stdout, so they see the
plain lines; tests/test_cli_terminal.py runs the command under a pseudo-terminal.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import sys
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import ttstream
from tests.uvicorn_thread import ServerThread
from ttstream import cli
from ttstream._cli_output import clean
from ttstream._secrets import redact
from ttstream.emulator import EmulatorServer

KEY = "sk-test-0123456789abcdef"
PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SMALL = ["--model", "gpt-image-2", "--size", "64x48"]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(step_delay=0.0) as server:
        yield server


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TTAPI_API_KEY", "OPENAI_API_KEY", "TTAPI_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("ttstream._connect.backoff_delay", lambda attempt: 0.0)


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTAPI_API_KEY", KEY)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.usefixtures("keyed")
def test_generate_writes_previews_and_the_final_with_plain_lines(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys, "generate", "a kite", *SMALL, "--partial-images", "2",
        "--out", str(tmp_path), "--base-url", emulator.base_url,
    )  # fmt: skip
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Generating with gpt-image-2..."
    assert [line.split()[2:4] for line in lines[1:4]] == [
        ["preview", "#0"], ["preview", "#1"], ["final", "image"]
    ]  # fmt: skip
    assert "tokens used:" in lines[4]
    assert lines[5].startswith(f"Done: 3 file(s) in {tmp_path}/, first preview after ")
    assert len(list(tmp_path.glob("a-kite-*-final.png"))) == 1


@pytest.mark.usefixtures("keyed")
def test_two_concurrent_runs_with_one_prompt_leave_two_files(
    emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "_timestamp", lambda: "20260101-120000")  # the same second
    statuses: list[int] = []
    argv = ["generate", "a fox", *SMALL, "--out", str(tmp_path), "--base-url", emulator.base_url]
    threads = [threading.Thread(target=lambda: statuses.append(cli.main(argv))) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a-fox-20260101-120000-final.png",
        "a-fox-20260101-120000_2-final.png",
    ]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("localhost:8000/v1", "the scheme 'localhost' is not http or https"),
        ("http://127.0.0.1:99999/v1", "port 99999 is not from 1 to 65535"),
        ("http://[::1/v1", "a malformed URL"),
        ("http://127.0.0.1:abc/v1", "a malformed URL"),
    ],
)
def test_a_malformed_base_url_is_a_usage_error_at_once(
    capsys: pytest.CaptureFixture[str], keyed: None, url: str, why: str
) -> None:
    status, out, err = run(capsys, "generate", "x", "--base-url", url)
    assert status == 2
    assert out == ""
    assert err.startswith(
        "ttstream: error: --base-url must be an http:// or https:// URL, such as "
        f"https://api.openai.com/v1 (got {url!r}: {why}"
    )
    assert err.count("\n") == 1  # one line, no traceback


def test_a_long_parameter_error_keeps_the_option_it_names(
    capsys: pytest.CaptureFixture[str], keyed: None, emulator: EmulatorServer
) -> None:
    status, _, err = run(
        capsys, "generate", "x", "--base-url", emulator.base_url, "--size", "13x13"
    )
    assert status == 1
    assert err.rstrip().endswith("(option --size)")


def test_no_key_with_a_base_url_names_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "generate", "x", "--base-url", "http://127.0.0.1:9/v1")
    assert status == 1
    assert err.count("\n") == 1
    assert "TTAPI_API_KEY" in err
    assert "--api-key-file" in err
    assert "api_key=" not in err


@pytest.mark.usefixtures("keyed")
def test_a_connection_error_is_one_line_naming_the_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    status, _, err = run(capsys, "generate", "x", "--base-url", f"http://127.0.0.1:{port}/v1")
    assert status == 1
    assert err.count("\n") == 1
    assert err.startswith(f"ttstream: error: cannot reach 127.0.0.1:{port}: ")
    assert "ConnectError(" not in err
    assert "retrying" not in err


@pytest.mark.usefixtures("keyed")
def test_retry_lines_reach_stderr_only_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    status, _, err = run(capsys, "generate", "x", "--base-url", url, "-v")
    assert status == 1
    lines = err.splitlines()
    assert [line.split()[:2] for line in lines[:2]] == [["ttstream:", "retrying"]] * 2
    assert lines[2].startswith("ttstream: error: cannot reach 127.0.0.1")
    assert KEY not in err


@pytest.mark.usefixtures("keyed")
def test_a_refused_parameter_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "generate", "x", "--model", "gpt-image-1", "--size", "3x3")
    assert status == 1
    assert err.startswith("ttstream: error: size='3x3' is not allowed for model 'gpt-image-1'")
    assert err.rstrip().endswith("(option --size)")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import ttstream

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ttstream {ttstream.__version__}"


def test_help_says_where_the_key_comes_from(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "TTAPI_API_KEY" in text
    assert "--api-key-file FILE" in text
    assert "process list" in text


# --- the key: from a file or stdin; --api-key only with a warning ---------------------


class KeyRecorder:
    """An Images API stand-in that records the key each request carried."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []
        self.bodies: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[Route("/v1/images/generations", self.generate, methods=["POST"])]
        )

    async def generate(self, request: Request) -> Response:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.keys.append(request.headers.get("tt-api-key") or bearer)
        self.bodies.append(json.loads(await request.body()))
        b64 = base64.b64encode(PNG_1x1).decode()
        return JSONResponse({"created": 1, "data": [{"b64_json": b64}]})


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[KeyRecorder, str]]:
    recording = KeyRecorder()
    with ServerThread(recording.app) as server:
        yield recording, f"{server.url}/v1"


def test_the_key_is_read_from_a_file(
    recorder: tuple[KeyRecorder, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recording, url = recorder
    (tmp_path / "key").write_text(KEY + "\n")
    argv = ["generate", "x", "--model", "m", "--no-stream", "--out", str(tmp_path / "o")]
    status, out, err = run(
        capsys, *argv, "--base-url", url, "--api-key-file", str(tmp_path / "key")
    )
    assert (status, err) == (0, "")
    assert recording.keys[-1] == KEY
    assert KEY not in out


def test_the_key_is_read_from_stdin(
    recorder: tuple[KeyRecorder, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recording, url = recorder
    monkeypatch.setattr(sys, "stdin", io.StringIO(KEY + "\n"))
    argv = ["generate", "x", "--model", "m", "--no-stream", "--out", str(tmp_path)]
    status, out, err = run(capsys, *argv, "--base-url", url, "--api-key-file", "-")
    assert (status, err) == (0, "")
    assert recording.keys[-1] == KEY
    assert KEY not in out


def test_api_key_on_the_command_line_warns(
    recorder: tuple[KeyRecorder, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recording, url = recorder
    argv = ["generate", "x", "--model", "m", "--no-stream", "--out", str(tmp_path)]
    status, out, err = run(capsys, *argv, "--base-url", url, "--api-key", KEY)
    assert status == 0
    assert recording.keys[-1] == KEY
    assert err.startswith("ttstream: warning: --api-key shows the key to every local user")
    assert KEY not in out + err


def test_an_empty_key_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "key").write_text("\n")
    status, _, err = run(capsys, "generate", "x", "--api-key-file", str(tmp_path / "key"))
    assert status == 2
    assert "no key in it" in err


def test_every_parameter_option_reaches_the_request(
    recorder: tuple[KeyRecorder, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recording, url = recorder
    options = {
        "size": "1024x1024", "quality": "xhigh", "background": "opaque",
        "output_format": "png", "moderation": "low", "response_format": "b64_json",
        "style": "vivid", "complexity": "high", "safety_identifier": "user-7", "user": "u",
        "partial_images": 2, "n": 1, "output_compression": 80, "frame_count": 4,
        "frame_duration_ms": 120,
    }  # fmt: skip
    argv = [arg for name, value in options.items() for arg in (cli._option(name), str(value))]
    status, _, err = run(
        capsys, "generate", "x", "--model", "a-new-model", "--no-stream", *argv,
        "--out", str(tmp_path), "--base-url", url, "--api-key", KEY,
    )  # fmt: skip
    assert status == 0
    assert err.startswith("ttstream: warning: --api-key")
    assert recording.bodies[-1] == {"model": "a-new-model", "prompt": "x", **options}


def test_edit_takes_input_fidelity(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["edit", "--help"])
    assert "--input-fidelity" in capsys.readouterr().out


# --- what a hostile server sends is printed safely ---------------------------------------


def hostile_app() -> Starlette:
    b64 = base64.b64encode(PNG_1x1).decode()
    preview = {
        "type": "image_generation.partial_image", "b64_json": b64, "partial_image_index": 0,
        "size": "\x1b[2J\x1b]0;owned\x07\ud800", "output_format": "png\x00/../../x",
    }  # fmt: skip
    final = {**preview, "type": "image_generation.completed"}
    del final["partial_image_index"]

    async def stream(request: Request) -> Response:
        if request.headers.get("x-case") == "echo":  # a server that echoes the headers
            echoed = dict(request.headers)
            return JSONResponse({"error": {"message": f"bad request {echoed}"}}, status_code=400)
        if request.headers.get("x-case") == "error":
            message = {"error": {"message": "bad \x1b[31mthing\x1b[0m\nline two", "code": "x"}}
            return JSONResponse(message, status_code=400)

        async def body() -> Any:
            for event in (preview, final):
                yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/images/generations", stream, methods=["POST"])])


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    with ServerThread(hostile_app()) as server:
        yield f"{server.url}/v1"


@pytest.mark.usefixtures("keyed")
def test_server_fields_with_escapes_nul_and_surrogates_print_safely(
    hostile: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys, "generate", "x", "--model", "m", "--out", str(tmp_path), "--base-url", hostile
    )
    assert (status, err) == (0, "")
    assert "\x1b" not in out
    assert "\\x1b[2J" in out
    out.encode("utf-8")  # no lone surrogate left: it would not encode
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".bin", ".bin"]


def ask_for(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request ttstream builds carries ``x-case: <case>`` for the hostile server."""
    original = httpx2.AsyncClient.build_request

    def with_case(self: httpx2.AsyncClient, *args: Any, **kwargs: Any) -> httpx2.Request:
        request = original(self, *args, **kwargs)
        request.headers["x-case"] = case
        return request

    monkeypatch.setattr(httpx2.AsyncClient, "build_request", with_case)


def test_server_error_text_is_one_clean_line(
    hostile: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTAPI_API_KEY", KEY)
    ask_for("error", monkeypatch)
    status, _, err = run(capsys, "generate", "x", "--model", "m", "--base-url", hostile)
    assert status == 1
    assert "\x1b" not in err
    assert err.count("\n") == 1
    assert err.startswith("ttstream: error: 127.0.0.1:")
    assert "answered HTTP 400: bad \\x1b[31mthing\\x1b[0m line two" in err


@pytest.mark.parametrize("source", ["env", "file", "option"])
def test_a_key_echoed_by_the_server_is_never_printed(
    hostile: str,
    source: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ask_for("echo", monkeypatch)
    (tmp_path / "key").write_text(KEY)
    given = {
        "env": [],
        "file": ["--api-key-file", str(tmp_path / "key")],
        "option": ["--api-key", KEY],
    }
    if source == "env":
        monkeypatch.setenv("TTAPI_API_KEY", KEY)
    argv = ["generate", "x", "--model", "m", "--base-url", hostile, "-v", *given[source]]
    status, out, err = run(capsys, *argv)
    assert status == 1
    assert "answered HTTP 400: bad request" in err
    assert "[REDACTED]" in err
    assert KEY not in out + err
    assert KEY[:12] not in out + err  # not even a piece of it


# --- dall-e results as URLs ---------------------------------------------------------------


@pytest.mark.usefixtures("keyed")
def test_url_results_are_downloaded_into_files(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys, "generate", "x", "--model", "dall-e-2", "--size", "256x256",
        "--response-format", "url", "--out", str(tmp_path), "--base-url", emulator.base_url,
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert "downloading the image from http://127.0.0.1" in out
    [final] = tmp_path.iterdir()
    assert final.read_bytes().startswith(b"\x89PNG")


@given(st.text())
def test_clean_leaves_one_printable_line(text: str) -> None:
    line = clean(text, limit=10_000)
    line.encode("utf-8")  # no lone surrogate
    assert len(line.splitlines()) <= 1
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in line)
    assert not any(c in line for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    if text.isprintable() and not set(text) & set("\u200e\u200f"):
        assert line == redact(text)  # printable text is left alone, but for credentials


def test_clean_shortens_long_server_text() -> None:
    line = clean("x" * 1000)
    assert len(line) == 300
    assert line.endswith("…")


def test_api_key_and_api_key_file_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["generate", "x", "--api-key", KEY, "--api-key-file", "k"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_timeout_names_the_host_and_which_timeout() -> None:
    error = ttstream.APITimeoutError("read timeout: ...", timeout="read")
    error.__cause__ = httpx2.ReadTimeout("The read operation timed out")
    line = cli.describe(error, "https://api.ttapi.io/v1")
    assert line == (
        "api.ttapi.io did not answer in time (read timeout): The read operation timed out"
    )
