"""The runnable examples of docs/ pages, extracted from the pages and run as a new user
would: offline, with no key set (the emulator answers). A page and its run cannot drift
apart."""

from __future__ import annotations

import json
import re
from pathlib import Path

from PIL import Image
from test_readme_examples import run_offline

DOCS = Path(__file__).parent.parent / "docs"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (DOCS / page).read_text(), flags=re.S | re.M)


def test_the_tutorials_first_stream_runs_offline_as_written(tmp_path: Path) -> None:
    result = run_offline(python_blocks("tutorial.md")[0], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("No API key set: using the built-in emulator at http://127.0.0.1:")
    assert [line.split()[:2] for line in lines[1:4]] == [["preview", str(i)] for i in range(3)]
    assert lines[4].startswith("done; tokens: ")
    with Image.open(tmp_path / "final.png") as final:
        assert (final.format, final.size) == ("PNG", (1024, 1024))


def test_the_observability_example_prints_the_span_of_one_generation(tmp_path: Path) -> None:
    [code] = [b for b in python_blocks("observability.md") if b.startswith("# otel_demo.py")]
    result = run_offline(code, tmp_path)
    assert result.returncode == 0, result.stderr
    # The console exporter prints each span as one JSON object after the emulator's line.
    span = json.loads(result.stdout.split("\n", 1)[1])
    assert span["name"] == "image_generation gpt-image-2"
    assert span["kind"] == "SpanKind.CLIENT"
    assert span["attributes"]["ttstream.images"] == 1
    names = [event["name"] for event in span["events"]]
    assert names == ["ttstream.preview", "ttstream.preview", "ttstream.image"]


def test_the_batch_example_runs_and_its_rerun_pays_nothing(tmp_path: Path) -> None:
    [code] = [b for b in python_blocks("batch.md") if b.startswith("# batch_demo.py")]
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
    [code] = [b for b in python_blocks("batch.md") if "client.batch(concurrency=4)" in b]
    result = run_offline(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("lighthouse True (Completed(")
