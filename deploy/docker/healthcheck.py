"""Container health check for the web process: exit 0 when GET /health answers 200.

Runs in the slim image, which has no curl. The Host header is `localhost`, so ALLOWED_HOSTS must
include it (the Compose file and the Kubernetes ConfigMap do).
"""

import os
import sys
import urllib.request

port = os.environ.get("SERVICE_PORT", "8006")
request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Host": "localhost"})
try:
    with urllib.request.urlopen(request, timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as error:  # any failure at all means unhealthy
    print(f"unhealthy: {error}", file=sys.stderr)
    sys.exit(1)
