"""moto's standalone S3 server (`moto_server`, in a virtualenv of its own) on loopback, with
a bucket made: the S3-compatible object store of the artifact storage tests, the three-host
proof and bench/artifact_fetch.py. No cloud is reachable here; this is a real HTTP server."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from tests.hosts import free_port
from tests.tools import tool_executable

MOTO = "moto[server]==5.2.5"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class MotoServer:
    def __init__(self, bucket: str, log_file: Path | None = None) -> None:
        import boto3

        self.bucket = bucket
        self.endpoint = f"http://127.0.0.1:{free_port()}"
        with open(log_file or os.devnull, "w") as log:
            self.process = subprocess.Popen(
                [str(tool_executable(MOTO, "moto_server")), "-H", "127.0.0.1", "-p", self.endpoint.rsplit(":", 1)[1]],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        keys = {name.lower(): value for name, value in AWS.items() if "KEY" in name}
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, **keys)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.s3.create_bucket(Bucket=bucket)
                return
            except Exception as exc:  # noqa: BLE001 - not listening yet
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not answer on {self.endpoint}") from exc
                time.sleep(0.2)

    def env(self, prefix: str | None = None) -> dict[str, str]:
        """The portal's environment for an artifact storage under a prefix of its own."""
        prefix = prefix or f"t-{uuid.uuid4().hex[:8]}"
        return {"ARTIFACT_STORAGE": f"s3://{self.bucket}/{prefix}", "AWS_S3_ENDPOINT_URL": self.endpoint, **AWS}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
