"""``ttstream batch JOBS.jsonl --out DIR``: in-process runs see the plain lines; a run
under a pseudo-terminal shows the live display and exits 130 on Ctrl-C, and a rerun
continues."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import sys
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ttstream import _cli_batch, cli
from ttstream._journal import params_hash
from ttstream.emulator import EmulatorServer

KEY = "sk-batch-0123456789abcdef"
MAX_LINE = 1024 * 1024  # characters of one JOBS line (docs/batch.md)


@pytest.fixture(autouse=True)
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "TTAPI_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TTAPI_API_KEY", KEY)


def write_jobs(path: Path, *jobs: dict[str, object]) -> Path:
    path.write_text("".join(json.dumps(job) + "\n" for job in jobs), encoding="utf-8")
    return path


def run(emulator: EmulatorServer, *args: str) -> int:
    return cli.main(["batch", *args, "--base-url", emulator.base_url])


def test_every_job_is_written_as_its_key(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"prompt": "a kite", "key": "kite", "size": "64x48", "partial_images": 1},
        {"prompt": "a boat", "size": "64x48", "output_format": "jpeg"},
        {"prompt": "two cats", "size": "64x48", "n": 2},
    )
    out = tmp_path / "out"
    assert run(emulator, str(jobs), "--out", str(out), "--concurrency", "2") == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        ".ttstream-journal.sqlite",
        ".ttstream-journal.sqlite.lock",
        "kite.png",
        "line-2.jpg",
        "line-3-2.png",
        "line-3.png",
    ]
    printed = capsys.readouterr().out
    assert "done  kite -> " in printed
    assert "Summary: done 3, failed 0, images 4" in printed
    assert "estimated cost $" in printed
    assert KEY not in printed


def test_a_rerun_sends_nothing_again(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "a kite", "size": "64x48"})
    out = tmp_path / "out"
    assert run(emulator, str(jobs), "--out", str(out)) == 0
    before = emulator.stream_stats.generations
    capsys.readouterr()
    assert run(emulator, str(jobs), "--out", str(out)) == 0
    assert emulator.stream_stats.generations == before
    printed = capsys.readouterr().out
    assert "already done  line-1" in printed
    assert "(+1 from earlier runs)" in printed
    assert sorted(p.name for p in out.glob("*.png")) == ["line-1.png"]


def test_a_rerun_estimates_the_cost_as_the_first_run_did(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "a kite", "size": "64x48"})

    def cost() -> str:
        assert run(emulator, str(jobs), "--out", str(tmp_path / "out")) == 0
        (summary,) = [line for line in capsys.readouterr().out.splitlines() if "Summary" in line]
        return summary.split("estimated cost ")[1].split(", time")[0]

    first = cost()
    assert first != "$0"
    assert cost() == first  # every job from the journal: their cost, not $0


def test_a_failed_job_exits_1_with_its_reason(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"prompt": "fine", "key": "fine", "size": "64x48"},
        {"prompt": "late", "key": "late", "size": "64x48", "deadline": 0.001},
    )
    journal = tmp_path / "j.sqlite"
    assert run(emulator, str(jobs), "--out", str(tmp_path), "--journal", str(journal)) == 1
    printed = capsys.readouterr().out
    assert "failed  late: " in printed
    assert "did not answer in time (deadline timeout)" in printed
    assert "done 1, failed 1" in printed
    with sqlite3.connect(journal) as db:
        states = dict(db.execute("SELECT key, state FROM jobs").fetchall())
    assert states == {"fine": "done", "late": "failed"}


def test_failed_jobs_do_not_pile_up_their_previews(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The run kept each failed job's result for the summary, its error holding the
    # last preview (last_partial, ~200 kB at 1024x1024): memory grew with the failures.
    def peak(jobs: int) -> int:
        failing = {"prompt": "a kite", "size": "1024x1024", "partial_images": 2}
        failing["extra_query"] = {"fault": "error-nested"}  # fails after its previews
        path = write_jobs(tmp_path / f"jobs-{jobs}.jsonl", *[failing] * jobs)
        tracemalloc.start()
        try:
            assert run(emulator, str(path), "--out", str(tmp_path / f"out-{jobs}")) == 1
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(2)  # the emulator makes its kite once
    few, many = peak(5), peak(120)
    assert "failed  line-120: " in capsys.readouterr().out
    assert many - few < 10_000_000, (few, many)  # 115 previews more: 23 MB


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "jobs.jsonl line 1: not JSON"),
        ("[1]", "a JSON object is needed"),
        ('{"size": "64x48"}', '"prompt" must be a non-empty string'),
        ('{"prompt": "x", "quality": "ultra"}', "jobs.jsonl line 1: quality="),
        (
            '{"prompt": "x", "sise": "64x48"}',
            "jobs.jsonl line 1: unknown field 'sise' (did you mean 'size'?); the fields are "
            "prompt, key, background,",
        ),
        ('{"prompt": "x", "timeout": 0}', "jobs.jsonl line 1: timeout=0 is not allowed"),
        ('{"prompt": "x", "timeout": null}', "jobs.jsonl line 1: timeout=None is not allowed"),
        ('{"prompt": "x", "images": ["a.png"]}', '"images" and "mask" need --edit'),
        ('{"prompt": "x", "key": "../up"}', "key"),
        # a lone surrogate: SQLite's UnicodeEncodeError escaped as a traceback
        ('{"prompt": "x", "key": "x\\ud800"}', "lone surrogates"),
        # 600 bytes: the image was paid for, then its file name was too long
        (json.dumps({"prompt": "x", "key": "\u65e5" * 200}), "200 bytes in UTF-8"),
    ],
)
def test_a_bad_jobs_file_exits_2_naming_the_line(
    emulator: EmulatorServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    line: str,
    message: str,
) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(line + "\n", encoding="utf-8")
    before = emulator.stream_stats.generations
    assert run(emulator, str(jobs), "--out", str(tmp_path / "out")) == 2
    assert message in capsys.readouterr().err
    assert emulator.stream_stats.generations == before


def test_a_deeply_nested_line_exits_2_naming_the_line(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # json.loads raises RecursionError (not a ValueError) for deep nesting: it escaped
    # as a traceback
    jobs = tmp_path / "jobs.jsonl"
    depth = 200_000
    jobs.write_text('{"prompt": "a", "x": ' + "[" * depth + "]" * depth + "}\n", "utf-8")
    assert run(emulator, str(jobs), "--out", str(tmp_path / "out")) == 2
    assert "jobs.jsonl line 1: JSON nested too deeply" in capsys.readouterr().err


def test_a_line_over_the_cap_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    with jobs.open("w", encoding="utf-8") as file:
        file.write('{"prompt": "a"}\n')
        file.write('{"prompt": "' + "x" * (8 * MAX_LINE) + '"}\n')
    tracemalloc.start()
    try:
        with pytest.raises(_cli_batch.JobsFileError, match="line 2: longer than"):
            _cli_batch.read_jobs(jobs, edit=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the 8 MiB line was held whole before (its str: 8 MiB and more)
    assert peak < 4 * MAX_LINE


def test_a_line_at_the_cap_is_read(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    # a model the rules do not know: its prompt has no limit of theirs
    line = '{"model": "m", "prompt": "' + "x" * (MAX_LINE - 30) + '"}'
    line += " " * (MAX_LINE - len(line))
    jobs.write_text(line + "\r\n" + line + "\n", encoding="utf-8")
    assert [job.line for job in _cli_batch.read_jobs(jobs, edit=False)] == [1, 2]


def test_a_key_of_200_bytes_names_its_file(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "\u65e5" * 66 + "ab"  # 200 bytes in UTF-8
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "a", "key": key, "size": "64x48"})
    assert run(emulator, str(jobs), "--out", str(tmp_path / "out")) == 0
    names = [path.name for path in (tmp_path / "out").iterdir()]
    assert [name for name in names if not name.startswith(".")] == [f"{key}.png"]


def test_a_key_on_two_lines_is_refused(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", {"prompt": "a", "key": "k"}, {"prompt": "b", "key": "k"}
    )
    assert run(emulator, str(jobs), "--out", str(tmp_path)) == 2
    assert "line 2: key 'k' is also on line 1" in capsys.readouterr().err


def test_edit_jobs_read_their_files_next_to_the_jobs_file(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(picture, "PNG")
    (tmp_path / "in.png").write_bytes(picture.getvalue())
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", {"prompt": "make it blue", "key": "blue", "images": "in.png"}
    )
    out = tmp_path / "out"
    assert run(emulator, str(jobs), "--out", str(out), "--edit") == 0
    assert (out / "blue.png").stat().st_size > 0


def test_an_edit_rerun_runs_without_the_files_of_done_jobs(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(picture, "PNG")
    (tmp_path / "in.png").write_bytes(picture.getvalue())
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {"prompt": "make it blue", "key": "blue", "images": "in.png"},
        {"prompt": "make it green", "key": "green", "images": "gone.png"},
    )
    out = tmp_path / "out"
    assert run(emulator, str(jobs), "--out", str(out), "--edit") == 1  # green failed
    (tmp_path / "in.png").unlink()
    capsys.readouterr()
    assert run(emulator, str(jobs), "--out", str(out), "--edit") == 1
    printed = capsys.readouterr().out
    assert "done 0 (+1 from earlier runs), failed 1" in printed
    assert "failed  green: images " in printed  # the path, cut to the line
    assert "a path of a readable file" in printed


def spawn(base_url: str, cwd: Path, *args: str) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(TERM="xterm-256color", TTAPI_API_KEY="any-key", COLUMNS="160")
    return pexpect.spawn(
        sys.executable,
        ["-m", "ttstream", "batch", *args, "--base-url", base_url],
        cwd=str(cwd),
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 160),
    )


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(step_delay=0.4) as server:
        yield server


def test_the_live_display_then_ctrl_c_exits_130_and_a_rerun_continues(
    slow_emulator: EmulatorServer, tmp_path: Path
) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *({"prompt": f"kite {i}", "size": "64x48", "partial_images": 2} for i in range(6)),
    )
    child = spawn(slow_emulator.base_url, tmp_path, str(jobs), "--out", "out", "--concurrency", "2")
    child.expect("done  line-")  # a job finished while the bar shows the rest
    child.expect("in flight")
    child.kill(signal.SIGINT)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert "interrupted" in child.before
    assert "the same command continues" in child.before
    with sqlite3.connect(tmp_path / "out" / ".ttstream-journal.sqlite") as db:
        rows = db.execute("SELECT key, state, staged FROM jobs").fetchall()
    states = {key: state for key, state, _ in rows}
    done_before = {key for key, state in states.items() if state == "done"}
    # a job whose images were written and journaled (staged) when Ctrl-C came: the
    # rerun finishes it from its files, with no request
    staged_before = {key for key, state, staged in rows if state == "running" and staged != "[]"}
    assert done_before
    assert set(states.values()) <= {"done", "running"}
    before = slow_emulator.stream_stats.generations
    child = spawn(slow_emulator.base_url, tmp_path, str(jobs), "--out", "out", "--concurrency", "3")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "ttstream batch" in child.before  # the summary table's title
    assert slow_emulator.stream_stats.generations - before == 6 - len(done_before | staged_before)
    assert len(list((tmp_path / "out").glob("*.png"))) == 6


def test_with_no_key_it_runs_on_the_emulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TTAPI_API_KEY")
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "a kite", "size": "64x48"})
    assert cli.main(["batch", str(jobs), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "using the built-in emulator" in printed
    assert (tmp_path / "out" / "line-1.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "jobs.jsonl line 2: not JSON"),
        # a value the request refuses: it was seen only once the emulator had started
        (
            '{"prompt": "x", "quality": "ultra"}',
            "jobs.jsonl line 2: quality='ultra' is not allowed for model 'gpt-image-2': "
            "quality must be one of",
        ),
        ('{"prompt": "x", "size": "7x7"}', "jobs.jsonl line 2: size='7x7' is not allowed"),
        ('{"prompt": "x", "n": 0}', "jobs.jsonl line 2: n=0 is not allowed"),
        ('{"prompt": "x", "deadline": 0}', "jobs.jsonl line 2: deadline=0"),
        (
            '{"prompt": "x", "model": "dall-e-3", "n": 2}',
            "jobs.jsonl line 2: n=2 is not allowed for model 'dall-e-3'",
        ),
        # the stream's own options, refused at once by client.generate too: they were
        # seen only once the emulator had started and --out was made
        ('{"prompt": "x", "reconnect": {"max_attempts": 5}}', "line 2: reconnect={"),
        ('{"prompt": "x", "extra_body": 5}', "jobs.jsonl line 2: extra_body=5 is not allowed"),
    ],
)
def test_a_bad_jobs_file_exits_2_before_the_emulator_starts(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    line: str,
    message: str,
) -> None:
    monkeypatch.delenv("TTAPI_API_KEY")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": "a kite"}\n' + line + "\n", encoding="utf-8")
    assert cli.main(["batch", str(jobs), "--out", str(tmp_path / "out")]) == 2
    printed = capsys.readouterr()
    assert message in printed.err
    assert "emulator" not in printed.out + printed.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "0"])
def test_a_rate_that_is_not_finite_exits_2_before_the_emulator_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # inf passed the check (> 0): the emulator started, then the batch refused it, exit 1
    monkeypatch.delenv("TTAPI_API_KEY")
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "a kite"})
    out = tmp_path / "out"
    for option in ("--images-per-minute", "--requests-per-minute"):
        assert cli.main(["batch", str(jobs), "--out", str(out), option, value]) == 2
        printed = capsys.readouterr()
        assert printed.err == f"ttstream: error: {option} must be a finite number more than 0\n"
        assert "emulator" not in printed.out
    assert not out.exists()


@pytest.mark.parametrize("name", ["missing.jsonl", "."])
def test_a_jobs_file_that_cannot_be_opened_exits_2_before_the_emulator_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # exit status 1, as a failed run, where docs/batch.md says 2 for a mistake in the
    # command line or the JOBS file
    monkeypatch.delenv("TTAPI_API_KEY")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["batch", name, "--out", "out"]) == 2
    printed = capsys.readouterr()
    why = "No such file or directory" if name == "missing.jsonl" else "Is a directory"
    assert printed.err == f"ttstream: error: {name}: {why}\n"
    assert "emulator" not in printed.out


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
_JOB = st.fixed_dictionaries(
    {"prompt": _TEXT},
    optional={"size": st.sampled_from(["64x48", "1024x1024"]), "n": st.integers(1, 10)},
)


@settings(max_examples=50, deadline=None)
@given(jobs=st.lists(_JOB, max_size=8))
def test_the_jobs_file_reads_back_what_was_written(jobs: list[dict[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_jobs(Path(tmp) / "jobs.jsonl", *jobs)
        read = _cli_batch.read_jobs(path, edit=False)
    assert [(line.prompt, line.params) for line in read] == [
        (job["prompt"], {k: v for k, v in job.items() if k != "prompt"}) for job in jobs
    ]
    assert [line.key for line in read] == [f"line-{i}" for i in range(1, len(jobs) + 1)]


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_any_jobs_file_is_read_or_refused_with_its_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "jobs.jsonl"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            _cli_batch.read_jobs(path, edit=False)
        except _cli_batch.JobsFileError as exc:
            error: str | None = str(exc)
        else:
            error = None
    assert error is None or "jobs.jsonl line " in error


@given(params=st.dictionaries(_TEXT, st.integers() | _TEXT, max_size=6))
def test_the_parameters_hash_ignores_their_order(params: dict[str, object]) -> None:
    shuffled = dict(reversed(list(params.items())))
    assert params_hash(params) == params_hash(shuffled)
    assert params_hash({**params, "extra": 1}) != params_hash({**params, "extra": 2})


def test_a_dall_e_request_of_the_cli_asks_for_inline_images_unless_told() -> None:
    # The one rule of `generate`/`edit` and of every JOBS line: files come from b64_json.
    params: dict[str, object] = {"size": "256x256"}
    _cli_batch.inline_images("dall-e-2", params)
    assert params == {"size": "256x256", "response_format": "b64_json"}
    told: dict[str, object] = {"response_format": "url"}
    _cli_batch.inline_images("dall-e-3", told)
    assert told == {"response_format": "url"}
    for model in ("gpt-image-1", None, 3):
        other: dict[str, object] = {}
        _cli_batch.inline_images(model, other)
        assert other == {}
