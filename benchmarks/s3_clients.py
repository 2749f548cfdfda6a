"""boto3 next to obstore for the requests a day run makes most: whole-object PUT and GET.

    .venv/bin/python benchmarks/s3_clients.py [--objects 2000] [--workers 16]

SeaweedFS on 127.0.0.1 (as in the tests). Half the objects are 30 KB, half 250 KB,
sent from a thread pool. Prints wall time and the CPU seconds of the client (this
process) and of the server for each, so the GIL-bound cost per request shows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    from failmap_assets.storage.s3_store import S3ObjectStore, s3_client
    from tests.support.s3_server import CpuMeter, start_server, stop_server

    sizes = [30_000 if i % 2 else 250_000 for i in range(args.objects)]
    blob = os.urandom(max(sizes))
    work = Path(tempfile.mkdtemp(prefix="s3-clients-"))
    proc, server = start_server(work)
    try:
        server.make_bucket("bench")
        os.environ.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key)
        client = s3_client(server.endpoint_url, server.region, max_pool=2 * args.workers)
        store = S3ObjectStore("bench", "ours", client)
        meter = CpuMeter(proc.pid)

        def boto3_put(i: int) -> None:
            client.put_object(Bucket="bench", Key=f"boto3/{i}", Body=blob[: sizes[i]])

        def boto3_get(i: int) -> None:
            client.get_object(Bucket="bench", Key=f"boto3/{i}")["Body"].read()

        ways = [("boto3 put_object", boto3_put), ("obstore (S3ObjectStore.put)", lambda i: store.put(str(i), blob[: sizes[i]])),
                ("boto3 get_object", boto3_get), ("obstore (S3ObjectStore.get)", lambda i: store.get(str(i)))]
        print(f"{args.objects} objects (30 KB / 250 KB), {args.workers} threads, SeaweedFS on loopback, {os.cpu_count()} cores")
        print(f"{'way':<30}{'wall s':>8}{'req/s':>8}{'client CPU s':>14}{'ms CPU/req':>12}{'server CPU s':>14}")
        for name, fn in ways:
            used: dict = {}
            t0 = time.perf_counter()
            with meter.measure(used), ThreadPoolExecutor(args.workers) as pool:
                list(pool.map(fn, range(args.objects)))
            wall = time.perf_counter() - t0
            client_cpu, server_cpu = used["client_cpu"], used["server_cpu"]
            print(f"{name:<30}{wall:>8.2f}{args.objects / wall:>8.0f}{client_cpu:>14.2f}"
                  f"{client_cpu / args.objects * 1000:>12.2f}{server_cpu:>14.2f}")
        return 0
    finally:
        stop_server(proc, server)


if __name__ == "__main__":
    raise SystemExit(main())
