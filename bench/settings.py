"""The project's settings plus the bare-DRF baseline endpoint (bench/baseline_urls.py).

Only the benchmark's processes use this module (DJANGO_SETTINGS_MODULE=bench.settings), so the baseline
is served by the very same Uvicorn process and middleware as the product, and by nothing else.
"""

from orchestrator_project.settings import *  # noqa: F403

ROOT_URLCONF = "bench.baseline_urls"
