"""`make test` sees to Chromium itself (scripts/ensure-chromium.sh): present, nothing happens; missing, it is
installed with apt-get when we are root or have sudo without a password, and otherwise the run stops at
once with the one command to run.

The system commands the script calls (id, sudo, apt-get) are stand-ins on PATH that record what they
were asked; the script itself runs as it does under `make test`.
"""

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ensure-chromium.sh"


@pytest.fixture
def machine(tmp_path):
    """A PATH of stand-ins, a log of their calls, and where Chromium would be."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    chromium = tmp_path / "usr" / "bin" / "chromium"

    def command(name, body):
        path = bin_dir / name
        path.write_text(f'#!/bin/bash\necho "{name} $*" >> {log}\n{body}\n')
        path.chmod(0o755)

    def run(*, uid, sudo_without_password=False):
        command("id", f"echo {uid}")
        command("sudo", "[[ $1 == -n ]] && shift; " + ('exec "$@"' if sudo_without_password else "exit 1"))
        # apt-get "installs" by creating the executable; update does nothing.
        command("apt-get", f'if [[ " $* " == *" install "* ]]; then mkdir -p {chromium.parent}; '
                f"printf '#!/bin/sh\\n' > {chromium}; chmod +x {chromium}; fi")  # fmt: skip
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CHROMIUM": str(chromium), "HOME": str(tmp_path)}
        result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
        calls = log.read_text().splitlines() if log.exists() else []
        return result, [line for line in calls if not line.startswith("id")]

    run.chromium = chromium
    return run


def test_with_chromium_present_it_does_nothing(machine):
    machine.chromium.parent.mkdir(parents=True)
    machine.chromium.write_text("#!/bin/sh\n")
    machine.chromium.chmod(0o755)
    result, calls = machine(uid=1000)
    assert result.returncode == 0 and calls == [] and result.stdout == result.stderr == ""


def test_as_root_it_installs_debians_chromium(machine):
    result, calls = machine(uid=0)
    assert result.returncode == 0, result.stderr
    assert calls == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends chromium",
    ]
    assert os.access(machine.chromium, os.X_OK)


def test_with_sudo_without_a_password_it_installs_through_sudo(machine):
    result, calls = machine(uid=1000, sudo_without_password=True)
    assert result.returncode == 0, result.stderr
    assert (
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium"
        in calls
    )
    assert os.access(machine.chromium, os.X_OK)


def test_without_root_or_sudo_it_fails_at_once_with_the_command_to_run(machine):
    result, calls = machine(uid=1000)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "  sudo apt-get install -y chromium"
    assert [call for call in calls if call.startswith("apt-get")] == []
