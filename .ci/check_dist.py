"""Checks the built distributions: every file of the package that git tracks is in the
wheel and in the sdist, the wheel declares the console script and the pytest plugin, and
the sdist carries what building it needs. Run by .ci/run as
``python .ci/check_dist.py DIST_DIR``; exits 1 and names what is missing."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path


def main(dist: Path) -> int:
    [wheel] = dist.glob("ttstream-*.whl")
    [sdist] = dist.glob("ttstream-*.tar.gz")
    tracked = subprocess.run(
        ["git", "ls-files", "ttstream"], capture_output=True, text=True, check=True
    ).stdout.split()
    package = {name for name in tracked if "__pycache__" not in name}
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
        entry_points = next(
            archive.read(name).decode()
            for name in in_wheel
            if name.endswith(".dist-info/entry_points.txt")
        )
    with tarfile.open(sdist) as archive:
        in_sdist = {name.partition("/")[2] for name in archive.getnames()}
    problems = [f"{wheel.name} lacks {name}" for name in sorted(package - in_wheel)]
    needed = package | {"pyproject.toml", "README.md"}
    problems += [f"{sdist.name} lacks {name}" for name in sorted(needed - in_sdist)]
    for line in ("ttstream = ttstream.__main__:main", "ttstream = ttstream.testing"):
        if line not in entry_points:
            problems.append(f"{wheel.name} does not declare the entry point {line!r}")
    for problem in problems:
        print(f"check_dist: {problem}", file=sys.stderr)
    print(f"check_dist: {wheel.name} and {sdist.name}: {len(package)} package files each")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
