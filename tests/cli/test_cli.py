"""The ``ttstream`` command: options, files, error lines for people, safe printing.

In-process runs (``cli.main``) write to a captured, non-terminal stdout, so they see the
plain lines; tests/cli/test_cli_terminal.py runs the command under a pseudo-terminal.
"""

from __future__ import annotations

import base64
import io
import json
import re
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
from tests.support.ports import free_port
from tests.support.uvicorn_thread import ServerThread
from ttstream import cli
from ttstream._cli_output import clean
from ttstream._secrets import redact
from ttstream.emulator import EmulatorServer

KEY = "sk-test-0123456789abcdef"
PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SMALL = ["--model", "gpt-image-2", "--size", "64x48"]


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
    assert [line.split()[2:6][: 3 if "final" in line else 4] for line in lines[1:4]] == [
        ["preview", "1", "of", "2"], ["preview", "2", "of", "2"], ["final", "image", "64x48"]
    ]  # fmt: skip
    assert lines[1].endswith("-partial-1.png")  # numbered from 1, as the line says
    assert lines[2].endswith("-partial-2.png")
    assert "tokens used:" in lines[4]
    assert lines[5].startswith(f"Done: 3 files in {tmp_path}/, first preview after ")
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
    assert status == 2
    assert err.startswith("ttstream: error: --size 13x13 is not allowed for gpt-image-2: ")
    assert err.count("\n") == 1


def test_no_key_with_a_base_url_names_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "generate", "x", "--base-url", "http://127.0.0.1:9/v1")
    assert status == 2  # a mistake found before anything starts
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
    assert status == 2
    assert err == (
        "ttstream: error: --size 3x3 is not allowed for gpt-image-1: it must be one of "
        "'auto', '1024x1024', '1536x1024', '1024x1536'\n"
    )


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
    argv = ["generate", "x", "--model", "gpt-image-2", "--no-stream", "--out", str(tmp_path / "o")]
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
    argv = ["generate", "x", "--model", "gpt-image-2", "--no-stream", "--out", str(tmp_path)]
    status, out, err = run(capsys, *argv, "--base-url", url, "--api-key-file", "-")
    assert (status, err) == (0, "")
    assert recording.keys[-1] == KEY
    assert KEY not in out


def test_api_key_on_the_command_line_warns(
    recorder: tuple[KeyRecorder, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recording, url = recorder
    argv = ["generate", "x", "--model", "gpt-image-2", "--no-stream", "--out", str(tmp_path)]
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
    assert err.splitlines()[1] == (
        "ttstream: warning: model 'a-new-model' is not in ttstream's table: its parameters "
        "are not checked; sending it as given"
    )
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
        capsys,
        "generate",
        "x",
        "--model",
        "gpt-image-2",
        "--out",
        str(tmp_path),
        "--base-url",
        hostile,
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
    status, _, err = run(capsys, "generate", "x", "--model", "gpt-image-2", "--base-url", hostile)
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
    argv = ["generate", "x", "--model", "gpt-image-2", "--base-url", hostile, "-v", *given[source]]
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


# --- checks before anything starts (issue 21) ------------------------------------------


def one_line(err: str) -> str:
    """The one line of ``err``, after checking that there is exactly one."""
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.rstrip("\n")


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe" + KEY.encode("utf-16-le"),  # saved as UTF-16 by an editor
        KEY.encode() + b"\xe9\n",  # Latin-1
    ],
)
def test_a_key_file_that_is_not_utf8_is_one_line_naming_the_file(
    recorder: tuple[KeyRecorder, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
) -> None:
    recording, url = recorder
    requests = len(recording.keys)
    (tmp_path / "key").write_bytes(content)
    argv = ["generate", "x", *SMALL, "--base-url", url, "--api-key-file", str(tmp_path / "key")]
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, "")
    line = one_line(err)
    assert line == (
        f"ttstream: error: --api-key-file {tmp_path / 'key'}: not UTF-8 text (is it the key file?)"
    )
    assert len(recording.keys) == requests  # nothing was sent


@pytest.mark.parametrize("source", ["file", "option", "env", "stdin"])
@pytest.mark.parametrize("key", [KEY[:8] + "é" + KEY[8:], KEY + "\u00a0x", KEY[:5] + " " + KEY[5:]])
def test_a_key_that_is_not_printable_ascii_is_one_line_without_the_key(
    recorder: tuple[KeyRecorder, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    key: str,
) -> None:
    recording, url = recorder
    requests = len(recording.keys)
    (tmp_path / "key").write_text(key + "\n", encoding="utf-8")
    given = {
        "file": ["--api-key-file", str(tmp_path / "key")],
        "option": ["--api-key", key],
        "env": [],
        "stdin": ["--api-key-file", "-"],
    }[source]
    if source == "env":
        monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setattr(sys, "stdin", io.StringIO(key + "\n"))
    status, out, err = run(capsys, "generate", "x", *SMALL, "--base-url", url, *given)
    assert (status, out) == (2, "")
    line = one_line(err.removeprefix(err.split("\n")[0] + "\n") if source == "option" else err)
    assert line.startswith("ttstream: error: the API key from ")
    kind = "a space" if " " in key else "a non-ASCII character"
    assert f" has {kind} (character " in line
    assert line.endswith("); API keys are printable ASCII without spaces")
    assert KEY[:5] not in err  # no piece of the key
    assert KEY[-8:] not in err
    assert len(recording.keys) == requests


def test_a_key_file_with_a_byte_order_mark_works(
    recorder: tuple[KeyRecorder, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recording, url = recorder
    (tmp_path / "key").write_bytes(b"\xef\xbb\xbf" + KEY.encode() + b"\r\n")  # Notepad's
    argv = ["generate", "x", *SMALL, "--no-stream", "--out", str(tmp_path / "o")]
    status, _, err = run(capsys, *argv, "--base-url", url, "--api-key-file", str(tmp_path / "key"))
    assert (status, err) == (0, "")
    assert recording.keys[-1] == KEY


@pytest.mark.parametrize("out", ["afile", "afile/sub"])
def test_an_out_that_is_a_file_is_refused_before_any_request(
    recorder: tuple[KeyRecorder, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    out: str,
) -> None:
    recording, url = recorder
    requests = len(recording.keys)
    monkeypatch.setenv("TTAPI_API_KEY", KEY)
    (tmp_path / "afile").write_text("mine")
    argv = ["generate", "x", *SMALL, "--out", str(tmp_path / out), "--base-url", url]
    status, stdout, err = run(capsys, *argv)
    assert (status, stdout) == (2, "")
    line = one_line(err)
    assert line.startswith(f"ttstream: error: --out {tmp_path / out}")
    assert line.endswith(
        "is a file, not a directory" + ("; name a directory" if out == "afile" else "")
    )
    assert len(recording.keys) == requests  # the (billed) generation never ran
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("under", ["", "new/"])
def test_an_out_the_file_system_refuses_is_refused_before_any_request(
    recorder: tuple[KeyRecorder, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    under: str,
) -> None:
    # A name longer than a file name may be. Under a new directory the checks passed (its
    # nearest existing ancestor is writable) and the directory was made only when the
    # first image arrived: the (billed) generation ran and the run failed with no file.
    # Right under an existing one, the check itself raised OSError: exit status 1.
    recording, url = recorder
    requests = len(recording.keys)
    monkeypatch.setenv("TTAPI_API_KEY", KEY)
    out = tmp_path / f"{under}{'a' * 300}"
    argv = ["generate", "x", *SMALL, "--out", str(out), "--base-url", url]
    status, stdout, err = run(capsys, *argv)
    assert (status, stdout) == (2, "")
    assert one_line(err).endswith("File name too long")
    assert len(recording.keys) == requests


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["--model", "dall-e-3", "--partial-images", "2"],
            "--partial-images 2 is not allowed for dall-e-3: it must be omitted "
            "(only 12 other models take partial_images)",
        ),
        (["--n", "0"], "--n 0 is not allowed for gpt-image-2: it must be an int from 1 to 10"),
        (
            ["--quality", "max"],
            "--quality max is not allowed for gpt-image-2: it must be one of 'auto', "
            "'high', 'medium', 'low'",
        ),
        (
            ["--output-format", "gif", "--partial-images", "1"],
            "--partial-images 1 is not allowed for gpt-image-2: it must be omitted with "
            "output_format='gif'",
        ),
    ],
)
def test_a_usage_error_stops_before_anything_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], line: str
) -> None:
    """No key and no --base-url: the emulator would start; a usage error comes first."""
    status, out, err = run(capsys, "generate", "x", "--out", str(tmp_path / "o"), *argv)
    assert status == 2
    assert out == ""  # no "using the built-in emulator", no "Generating with"
    assert one_line(err) == f"ttstream: error: {line}"
    assert not (tmp_path / "o").exists()  # made only once every check passed
    assert not (tmp_path / "o").exists()


def test_an_edit_of_a_missing_file_stops_before_anything_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, err = run(capsys, "edit", "x", "--image", str(tmp_path / "nope.png"))
    assert (status, out) == (2, "")
    assert one_line(err) == f"ttstream: error: --image {tmp_path / 'nope.png'}: no such file"


@pytest.mark.usefixtures("keyed")
def test_an_unknown_model_warns_in_one_line_and_is_sent(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["generate", "x", "--model", "gpt-image2", "--out", str(tmp_path)]
    status, _, err = run(capsys, *argv, "--base-url", emulator.base_url)
    warning, error = err.splitlines()
    assert warning == (
        "ttstream: warning: model 'gpt-image2' is not in ttstream's table (did you mean "
        "'gpt-image-2'?): its parameters are not checked; sending it as given"
    )
    assert status == 1  # sent, and refused as the API refuses it
    assert error.startswith("ttstream: error: 127.0.0.1:")
    assert "answered HTTP 400: Invalid value: 'gpt-image2'. Supported values are: " in error
    assert len(error) < 300


# --- what a stream cut short says (issue 21) -------------------------------------------


@pytest.fixture
def faults(emulator: EmulatorServer) -> Iterator[EmulatorServer]:
    """The module's emulator; a test sets ``default_fault``, which is reset after it."""
    try:
        yield emulator
    finally:
        emulator.default_fault = None


@pytest.mark.usefixtures("keyed")
@pytest.mark.parametrize("verbose", [False, True])
def test_a_cut_stream_says_after_which_preview_and_where_the_previews_are(
    faults: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], verbose: bool
) -> None:
    faults.default_fault = "drop-after=2"
    argv = ["generate", "a kite", *SMALL, "--partial-images", "3", "--out", str(tmp_path)]
    status, _, err = run(capsys, *argv, "--base-url", faults.base_url, *(["-v"] if verbose else []))
    assert status == 1
    error, *detail = err.splitlines()
    kept = sorted(p.name[-14:] for p in tmp_path.iterdir())
    # The emulator aborts right after preview 2; whether the client reads that preview
    # before it notices the abort depends on the transport: the line says what it got.
    assert kept in (["-partial-1.png"], ["-partial-1.png", "-partial-2.png"])
    previews = "1 preview" if len(kept) == 1 else "2 previews"
    assert error == (
        f"ttstream: error: the connection broke after preview {len(kept)} of 3; "
        f"{previews} kept in {tmp_path}/"
    )
    if verbose:
        [line] = detail
        assert line.startswith("ttstream: detail: the connection broke (reading the stream from")
        # the same preview as the error line (it said "#1" for "preview 2 of 3")
        last = len(kept)
        assert line.endswith(
            f"(last preview: preview {last}, partial_image_index {last - 1}): "
            "a stream that ends before its completed event is a failure"
        )
    else:
        assert detail == []


@pytest.mark.usefixtures("keyed")
def test_a_stream_ended_early_says_so(
    faults: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faults.default_fault = "end-early"
    argv = ["generate", "a kite", *SMALL, "--partial-images", "1", "--out", str(tmp_path)]
    status, _, err = run(capsys, *argv, "--base-url", faults.base_url)
    assert status == 1
    assert one_line(err) == (
        f"ttstream: error: 127.0.0.1:{faults.port} ended the stream after preview 1 of 1, "
        f"without the final image; 1 preview kept in {tmp_path}/"
    )


@pytest.mark.usefixtures("keyed")
@pytest.mark.parametrize("verbose", [False, True])
def test_an_unreachable_host_is_one_human_line(
    capsys: pytest.CaptureFixture[str], verbose: bool
) -> None:
    port = free_port()
    argv = ["generate", "x", "--base-url", f"http://127.0.0.1:{port}/v1"]
    status, _, err = run(capsys, *argv, *(["-v"] if verbose else []))
    assert status == 1
    lines = [line for line in err.splitlines() if "retrying" not in line]
    assert lines[0] == (
        f"ttstream: error: cannot reach 127.0.0.1:{port}: the connection was refused "
        "(is the server running, and --base-url right?)"
    )
    transport = ("ssl:default", "Connect call failed", "all attempts to connect")
    assert not any(words in lines[0] for words in transport)
    assert len(lines) == (2 if verbose else 1)  # the transport's own words only with -v


# --- files and lines (issue 21) --------------------------------------------------------


@pytest.mark.usefixtures("keyed")
def test_with_n_2_each_image_names_its_files_and_previews_count_from_1(
    emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "_timestamp", lambda: "20260101-120000")
    argv = ["generate", "a fox", *SMALL, "--n", "2", "--partial-images", "1"]
    status, out, err = run(capsys, *argv, "--out", str(tmp_path), "--base-url", emulator.base_url)
    assert (status, err) == (0, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a-fox-20260101-120000-image-1-final.png",
        "a-fox-20260101-120000-image-1-partial-1.png",
        "a-fox-20260101-120000-image-2-final.png",
        "a-fox-20260101-120000-image-2-partial-1.png",
    ]
    names = [" ".join(line.split()[2:7]) for line in out.splitlines()[1:] if line.startswith("[")]
    assert names == [
        "image 1 preview 1 of",
        "image 1 final image 64x48",
        "image 2 preview 1 of",
        "image 2 final image 64x48",
    ]
    assert f"Done: 4 files in {tmp_path}/" in out


def test_the_emulator_subcommand_names_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["emulator", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: ttstream emulator ")
    assert "--fault SPEC" in text
    assert "drop-between-events" in text  # the faults are listed


def test_the_emulator_refuses_a_fault_spec_it_cannot_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = cli.main(["emulator", "--port", "0", "--fault", "drop-sometimes"])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert one_line(err) == (
        "ttstream emulator: error: --fault 'drop-sometimes': unknown fault 'drop-sometimes' "
        "(faults: ttstream emulator --help)"
    )


def test_the_emulator_applies_its_fault_to_every_request(tmp_path: Path) -> None:
    """``ttstream emulator --fault SPEC`` in its own process, until SIGINT."""
    import signal
    import subprocess

    command = [sys.executable, "-m", "ttstream", "emulator", "--port", "0", "--step-delay", "0"]
    with subprocess.Popen(
        [*command, "--fault", "status=503;retry-after=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("ttstream emulator: base URL http://127.0.0.1:")
            base_url = first.split()[-1]
            body = {"prompt": "x", "model": "gpt-image-2", "size": "64x48"}
            with httpx2.Client(headers={"TT-API-KEY": "k"}, timeout=30) as http:
                faulty = http.post(f"{base_url}/images/generations", json=body)
                named = http.post(
                    f"{base_url}/images/generations",
                    json=body,
                    headers={"X-Emulator-Fault": "key=none"},
                )
            assert (faulty.status_code, faulty.headers["retry-after"]) == (503, "1")
            assert named.status_code == 200  # a request's own spec replaces the default
        finally:
            process.send_signal(signal.SIGINT)  # the emulator this test started
            assert process.wait(timeout=30) == 0


@pytest.mark.usefixtures("keyed")
@pytest.mark.parametrize("verbose", [False, True])
def test_a_resumed_stream_says_where_it_was_and_the_reason_only_with_verbose(
    faults: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], verbose: bool
) -> None:
    faults.default_fault = "ids;drop-after=2"
    argv = ["generate", "a kite", *SMALL, "--partial-images", "3", "--out", str(tmp_path)]
    status, out, err = run(capsys, *argv, "--base-url", faults.base_url, *(["-v"] * verbose))
    assert status == 0
    [notice] = [line for line in out.splitlines() if line.startswith("connection lost")]
    assert re.fullmatch(r"connection lost after preview [12] of 3; resuming in 0\.\ds", notice)
    details = [line for line in err.splitlines() if line.startswith("ttstream: detail: ")]
    assert len(details) == (1 if verbose else 0)
    assert all("the connection broke" in line for line in details)
    assert len(list(tmp_path.glob("*-final.png"))) == 1


def test_an_azure_ad_token_in_the_environment_is_a_credential(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client takes AZURE_OPENAI_AD_TOKEN (openai's variable, sent as a bearer token),
    # but the CLI refused to start without AZURE_OPENAI_API_KEY: exit 2, "no API key".
    token = "entra-cli-token-0123456789"
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", token)
    with EmulatorServer(step_delay=0.0, azure=True) as azure:
        service = ["--azure-endpoint", azure.endpoint, "--azure-deployment", "gpt-image-2"]
        argv = ["--api-version", "2025-04-01-preview", "--out", str(tmp_path), *service]
        status, stdout, err = run(capsys, "generate", "x", "--size", "64x48", *argv)
    assert status == 0, err
    assert len(list(tmp_path.glob("*-final.png"))) == 1
    assert token not in stdout + err


@pytest.mark.parametrize(
    ("service", "line"),
    [
        (
            ["--base-url", "http://127.0.0.1:9/v1"],
            "no API key for 127.0.0.1:9: set TTAPI_API_KEY (or OPENAI_API_KEY), "
            "or pass --api-key-file FILE (- for stdin)",
        ),
        (
            ["--azure-endpoint", "https://r.openai.azure.com"],
            "no API key for Azure: set AZURE_OPENAI_API_KEY (or AZURE_OPENAI_AD_TOKEN), "
            "or pass --api-key-file FILE (- for stdin)",
        ),
    ],
)
def test_no_key_for_a_service_is_a_mistake_found_before_out_is_made(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    service: list[str],
    line: str,
) -> None:
    # It was found only when the run started: --out NEW was made and left empty, exit 1.
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_AD_TOKEN", raising=False)
    out = tmp_path / "new"
    status, stdout, err = run(capsys, "generate", "x", *SMALL, "--out", str(out), *service)
    assert (status, stdout, err) == (2, "", f"ttstream: error: {line}\n")
    assert not out.exists()
