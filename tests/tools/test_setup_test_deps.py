"""README's test command sets up what the tests need by itself (issue 18, case 12): its one
command line runs tools/setup_test_deps.sh, which installs Chromium + chromedriver with apt when
they are missing. apt-get is faked here (no network, no root changes)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "setup_test_deps.sh"


def readme_test_command() -> str:
    """The second bash block of README's Quick start, found exactly as .ci/run finds it."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    return blocks[1].strip()


def test_readme_test_command_installs_the_browser_first():
    cmd = readme_test_command()
    assert "\n" not in cmd, "the block must stay one command line"
    steps = [s.strip() for s in cmd.split("&&")]
    assert "sh tools/setup_test_deps.sh" in steps
    assert "pip install --no-deps facenet-pytorch==2.6.0" in steps
    assert steps.index("sh tools/setup_test_deps.sh") < steps.index("python -m pytest -q tests")
    assert "chromium" not in (REPO / ".ci" / "run").read_text()  # CI runs the block, nothing more


@pytest.fixture
def fake_bin(tmp_path):
    """A PATH with only what the script may call: env, id, a recording apt-get and a pass-through sudo."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("env", "id"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    log = tmp_path / "apt.log"
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$DEBIAN_FRONTEND $*" >> {log}\n')
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    for name in ("apt-get", "sudo"):
        (bin_dir / name).chmod(0o755)
    return bin_dir, log


def _run(bin_dir, **env):
    return subprocess.run(["/bin/sh", str(SCRIPT)], env={"PATH": str(bin_dir), **env}, capture_output=True,
                          text=True, timeout=30)


def test_installs_chromium_when_missing(fake_bin):
    bin_dir, log = fake_bin
    r = _run(bin_dir)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "noninteractive update -qq"
    assert calls[1].startswith("noninteractive install -y") and calls[1].endswith("chromium chromium-driver")


def test_nothing_to_do_when_present_or_skipped(fake_bin):
    bin_dir, log = fake_bin
    assert _run(bin_dir, MASKFACE_SKIP_BROWSER="1").returncode == 0
    for tool in ("chromium", "chromedriver"):
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    assert _run(bin_dir).returncode == 0
    assert not log.exists()


def test_clear_error_without_apt(fake_bin):
    bin_dir, _ = fake_bin
    (bin_dir / "apt-get").unlink()
    r = _run(bin_dir)
    assert r.returncode == 1 and "apt-get is not available" in r.stderr and "MASKFACE_SKIP_BROWSER" in r.stderr
