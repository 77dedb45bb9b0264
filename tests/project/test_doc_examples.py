"""The examples of README.md and of the docs site (docs/), extracted from the pages and run
as a new user would: offline, with no key set. The pages and these runs cannot drift
apart."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import ttstream
from tests.support.paths import ROOT
from ttstream.emulator import EmulatorServer

pytest_plugins = ["pytester"]

README = ROOT / "README.md"
PAGES = [README, *sorted((README.parent / "docs").rglob("*.md"))]


def python_blocks() -> list[str]:
    """Every python block, README's first (its first block is the quick start)."""
    return [
        block
        for page in PAGES
        for block in re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)
    ]


def block_with(text: str) -> str:
    [block] = [b for b in python_blocks() if text in b]
    return block


def run_offline(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    (cwd / "example.py").write_text(code)
    return subprocess.run(
        [sys.executable, "example.py"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_quick_start_runs_offline_as_written(tmp_path: Path) -> None:
    quick_start = python_blocks()[0]
    result = run_offline(quick_start, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("No API key set: using the built-in emulator at http://127.0.0.1:")
    assert [line.split()[:2] for line in lines[1:4]] == [["preview", str(i)] for i in range(3)]
    assert lines[4].startswith("done; tokens: ")
    with Image.open(tmp_path / "final.png") as final:
        assert (final.format, final.size) == ("PNG", (1024, 1024))


def test_the_sync_client_example_runs_offline(tmp_path: Path) -> None:
    result = run_offline(
        block_with("with ttstream.Client(api_key, base_url=base_url) as client:"), tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("PartialImage(") == 2
    assert result.stdout.count("Completed(") == 1


def test_the_testing_example_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_readme=block_with("def test_my_code_keeps_the_last_preview"))
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert result.ret == 0
    assert set(outcomes) == {"passed"}


def test_the_first_readme_command_installs_the_cli_extra() -> None:
    first = re.search(r"```bash\n(.*?)\n```", README.read_text(), flags=re.S)
    assert first is not None
    assert "pip install -q -e '.[cli]'" in first.group(1)
    assert "\n" not in first.group(1).strip()  # one line to copy


def test_ci_runs_the_second_readme_command_and_stops_at_any_failure_in_it() -> None:
    second = re.findall(r"```bash\n(.*?)\n```", README.read_text(), flags=re.S)[1].strip()
    ci = (README.parent / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci
    # set -e does not stop at a failure inside an && list but at its last command only:
    # without `|| exit 1`, a failing linter let CI go on and pass
    assert f"\n{second} || exit 1\n" in ci


@pytest.mark.anyio
async def test_a_url_result_says_how_to_get_the_bytes() -> None:
    """Changing only the model to dall-e-3: the answer is a URL; image_bytes names the
    way to the bytes, and fetch_image (as in the quick start's loop) gets them."""
    with EmulatorServer() as server:
        async with ttstream.AsyncClient("any-key", base_url=server.base_url) as client:
            async with client.generate("a lighthouse", model="dall-e-3") as stream:
                [event] = [e async for e in stream]
            assert isinstance(event, ttstream.Completed)
            assert event.url is not None
            with pytest.raises(ttstream.TTStreamError, match=r"client\.fetch_image\(event\)"):
                _ = event.image_bytes
            data = await client.fetch_image(event)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"


def test_the_sinks_example_runs_offline(tmp_path: Path) -> None:
    result = run_offline(block_with("ttstream.sinks.FileSink("), tmp_path)
    assert result.returncode == 0, result.stderr
    names = [path.name for path in (tmp_path / "previews").iterdir()]
    assert sum(name.endswith("-final.png") for name in names) == 1
    assert sum("-partial-" in name for name in names) == 3


def test_the_azure_emulator_example_runs_offline(tmp_path: Path) -> None:
    # docs/azure.md's block lacked `import ttstream` (a NameError) and no test ran it
    result = run_offline(block_with("EmulatorServer(azure=True)"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["PartialImage", "Completed"]


def test_the_responses_example_runs_offline(tmp_path: Path) -> None:
    result = run_offline(block_with("client.responses.stream("), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:3] == ["preview 0", "preview 1"]
    with Image.open(tmp_path / "lighthouse.png") as final:
        assert final.size == (1536, 1024)


def test_the_observability_example_prints_the_span_of_one_generation(tmp_path: Path) -> None:
    result = run_offline(block_with("# otel_demo.py"), tmp_path)
    assert result.returncode == 0, result.stderr
    # The console exporter prints each span as one JSON object after the emulator's line.
    span = json.loads(result.stdout.split("\n", 1)[1])
    assert span["name"] == "image_generation gpt-image-2"
    assert span["kind"] == "SpanKind.CLIENT"
    assert span["attributes"]["ttstream.images"] == 1
    names = [event["name"] for event in span["events"]]
    assert names == ["ttstream.preview", "ttstream.preview", "ttstream.image"]


def test_the_batch_example_runs_and_its_rerun_pays_nothing(tmp_path: Path) -> None:
    code = block_with("# batch_demo.py")
    first = run_offline(code, tmp_path)
    assert first.returncode == 0, first.stderr
    keys = sorted(line.split()[0] for line in first.stdout.splitlines()[1:])
    assert keys == ["sku-1", "sku-2", "sku-3"]
    again = run_offline(code, tmp_path)
    assert again.returncode == 0, again.stderr
    assert sorted(again.stdout.splitlines()[1:]) == sorted(first.stdout.splitlines()[1:])
    # Done jobs came from the journal: no second file for any of them.
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        "sku-1.png",
        "sku-2.png",
        "sku-3.png",
    ]


def test_the_synchronous_batch_example_runs_offline(tmp_path: Path) -> None:
    result = run_offline(block_with("client.batch(concurrency=4)"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("lighthouse True (Completed(")
