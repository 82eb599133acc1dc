"""`make deploy-check` (deploy/validate.sh) fails, naming the problem, when an artifact is wrong."""

import shutil
import subprocess
import sys

from tests.processes import ROOT


def test_the_deploy_check_reports_each_broken_artifact_and_exits_non_zero(tmp_path):
    for name in ("Dockerfile", "docker-compose.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    # A Daphne flag that does not exist (the real one is --websocket_timeout) ...
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace('"-v", "0",', '"--websocket-timeout", "60",'))
    # ... a worker killed before its own shutdown grace is over ...
    worker = tmp_path / "deploy/kubernetes/worker-deployment.yaml"
    worker.write_text(
        worker.read_text().replace("terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds: 20")
    )
    # ... and a field Kubernetes does not know.
    service = tmp_path / "deploy/kubernetes/service.yaml"
    service.write_text(
        service.read_text().replace("  type: ClusterIP", "  type: ClusterIP\n  sessionAfinity: None")
    )

    result = subprocess.run(
        ["bash", str(tmp_path / "deploy/validate.sh")],
        env={"PATH": "/usr/bin:/bin", "VALIDATE_PYTHON": sys.executable, "DEPLOY_CHECK_STATIC": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "daphne rejects the Dockerfile CMD" in result.stderr
    assert "terminationGracePeriodSeconds must exceed WORKER_SHUTDOWN_GRACE" in result.stderr
    assert "service.yaml does not match the Kubernetes schema" in result.stderr
    assert "web: Dockerfile/Compose" in result.stderr  # the image's command no longer matches the others
