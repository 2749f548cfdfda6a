"""One day of fail maps on the real S3 server (SeaweedFS on 127.0.0.1), three ways.

    .venv/bin/python benchmarks/failmap_day.py [--wafers 1000] [--seed 1]

Prints, measured in the same run on the same objects:
  (a) the whole materialization of the failmap asset group through Dagster (a real
      instance, in a subprocess so its peak RSS is its own);
  (b) the floor: only GET + decompress of the same A and B objects, on the same
      number of threads;
  (b') the I/O floor: (b) plus PUTs of as many objects, of the same sizes, as (a)
      wrote: the I/O any implementation writing the contract's outputs must do;
  (c) the naive sequential way the users started from: one object at a time, GET A,
      parse with a plain Python line loop, write PNG and JSON, then GET B and update
      the JSON.
and the ratios a/b and a/c. Goals: a <= 1.5 b, a <= 0.1 c, peak RSS of (a) <= 1 GB.

For each way it also prints the CPU seconds spent by the client and by the S3 server.
The server runs on the same cores, so no way can finish faster than
(client CPU + server CPU) / cores: that bound is printed too.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DAY = date(2026, 1, 11)


def materialize_only() -> None:
    """(a), run in a child process with the environment pointing at the bucket."""
    from dagster import DagsterInstance, materialize

    from failmap_assets.defs.failmap.assets import FAILMAP_ASSETS
    from failmap_assets.resources import build_resources

    t0 = time.perf_counter()
    result = materialize(
        FAILMAP_ASSETS, partition_key=DAY.isoformat(), instance=DagsterInstance.get(), resources=build_resources(),
        run_config={"ops": {"failmap_day": {"config": {"as_of": "2026-01-13 00:00:00"}}}},
    )
    seconds = time.perf_counter() - t0
    meta = {}
    for mat in result.get_asset_materialization_events():
        m = mat.event_specific_data.materialization
        if m.asset_key.to_user_string() == "failmap_dies":
            meta = {k: getattr(v, "value", None) for k, v in m.metadata.items() if isinstance(getattr(v, "value", None), (int, float))}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"ok": result.success, "seconds": seconds, "peak_rss_mb": peak_mb, "dies": meta}))


def floor(a_store, b_store, a_keys, b_keys, workers: int) -> float:
    """(b): GET + decompress every object, nothing else."""
    from failmap_assets.formats.compression import unpack

    t0 = time.perf_counter()
    for store, keys in ((a_store, a_keys), (b_store, b_keys)):
        for key, data in store.get_many(keys, max_workers=workers):
            if isinstance(data, BaseException):
                raise data
            unpack(data)
    return time.perf_counter() - t0


def io_floor(a_store, b_store, out_store, a_keys, b_keys, output_sizes: list[int], workers: int) -> float:
    """(b'): (b) plus PUTs of as many objects, of the same sizes, as (a) wrote (PNG, JSON,
    Parquet): the I/O any implementation that writes the contract's outputs must do."""
    from concurrent.futures import ThreadPoolExecutor

    blob = os.urandom(max(output_sizes, default=0) + 1)
    t0 = time.perf_counter()
    floor(a_store, b_store, a_keys, b_keys, workers)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i_n: out_store.put(f"io-floor/{i_n[0]}", blob[: i_n[1]]), enumerate(output_sizes)))
    return time.perf_counter() - t0


def naive_parse(text: str):
    """A plain Python line loop, the way the users' first script read a file."""
    header, dies, in_rows = {}, {}, False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if in_rows:
            if line == "END":
                break
            parts = line.split()
            dies[(int(parts[0]), int(parts[1]))] = parts[2:]
        elif line.startswith("DIES"):
            in_rows = True
        else:
            key, _, value = line.partition(" ")
            header[key] = value
    return header, dies


def naive(a_store, b_store, out_store, pairs) -> float:
    """(c): one object at a time; A, then B updates the JSON."""
    from PIL import Image, ImageDraw

    from failmap_assets.formats.compression import unpack

    t0 = time.perf_counter()
    for a_key, b_key in pairs:
        header, dies = naive_parse(unpack(a_store.get(a_key))[0].data.decode("utf-8-sig"))
        xs = [x for x, _ in dies] or [0]
        ys = [y for _, y in dies] or [0]
        x0, y0 = min(xs), min(ys)
        img = Image.new("RGB", ((max(xs) - x0 + 1) * 4, (max(ys) - y0 + 1) * 4), "white")
        draw = ImageDraw.Draw(img)
        for (x, y), rest in dies.items():
            colour = (0, 160, 0) if int(rest[0]) == 1 else (200, 40, 40)
            draw.rectangle([(x - x0) * 4, (y - y0) * 4, (x - x0) * 4 + 3, (y - y0) * 4 + 3], fill=colour)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        token = a_key.rsplit("/", 1)[-1].rsplit("_", 2)[0]
        out_store.put(f"naive/png/{token}.png", buf.getvalue())
        chips = [{"x_abs": x, "y_abs": y, "b": str(int(rest[0]))} for (x, y), rest in sorted(dies.items(), key=lambda d: (d[0][1], d[0][0]))]
        out_store.put(f"naive/json/{token}.json", json.dumps({"wafer_token": token, "chips": chips}).encode())
        if b_key:
            b_header, b_dies = naive_parse(unpack(b_store.get(b_key))[0].data.decode("utf-8-sig"))
            doc = json.loads(out_store.get(f"naive/json/{token}.json"))
            for chip in doc["chips"]:
                b = b_dies.get((chip["x_abs"], chip["y_abs"]))
                if b:
                    chip["bucket_b"] = {"transformed_values": ",".join(b[1:]), "b": str(int(b[0])),
                                        "stime": b_header.get("STIME"), "partid": b_header.get("PARTID"),
                                        "tester": b_header.get("TESTER")}
            out_store.put(f"naive/json/{token}.json", json.dumps(doc).encode())
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wafers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--materialize-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.materialize_only:
        materialize_only()
        return 0

    from failmap_assets.storage.locations import open_store
    from failmap_synth.day import generate_day
    from tests.support.s3_server import CpuMeter, start_server, stop_server

    work = Path(tempfile.mkdtemp(prefix="failmap-bench-"))
    proc, server = start_server(work)
    try:
        server.make_bucket("bench")
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_REGION": server.region, "FAILMAP_S3_ENDPOINT_URL": server.endpoint_url,
            "FAILMAP_SOURCE_A": "s3://bench/a", "FAILMAP_SOURCE_B": "s3://bench/b",
            "FAILMAP_SOURCE_STDF": "s3://bench/stdf", "FAILMAP_OUTPUT": "s3://bench/out",
            "FAILMAP_MAX_WORKERS": str(args.workers), "DAGSTER_HOME": str(work / "dagster"),
        }
        os.environ.update(env)
        (work / "dagster").mkdir()
        kw = dict(endpoint_url=server.endpoint_url, region=server.region)
        stores = {k: open_store(f"s3://bench/{k}", **kw) for k in ("a", "b", "out")}

        t0 = time.perf_counter()
        objects = [o for o in generate_day(DAY, args.wafers, args.seed, broken=False) if o.bucket in ("a", "b")]
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(lambda o: stores[o.bucket].put(o.key, o.data), objects))
        a_keys = sorted(o.key for o in objects if o.bucket == "a")
        b_keys = sorted(o.key for o in objects if o.bucket == "b")
        nbytes = sum(len(o.data) for o in objects)
        print(f"setup: {len(a_keys)} A + {len(b_keys)} B objects, {nbytes / 1e6:.1f} MB compressed, "
              f"uploaded in {time.perf_counter() - t0:.1f} s")

        meter = CpuMeter(proc.pid)
        cpu: dict[str, dict] = {k: {} for k in ("a", "b", "b2", "c")}
        with meter.measure(cpu["a"]):
            run = subprocess.run([sys.executable, __file__, "--materialize-only"], env=env, capture_output=True, text=True)
        if run.returncode != 0:
            print(run.stdout[-2000:], run.stderr[-4000:], file=sys.stderr)
            return 1
        a = json.loads(run.stdout.strip().splitlines()[-1])
        with meter.measure(cpu["b"]):
            b_seconds = floor(stores["a"], stores["b"], a_keys, b_keys, args.workers)
        day = DAY.isoformat()
        outputs = [o.size for prefix in (f"png/{day}/", f"json/{day}/", f"parquet/failmap_dies/date={day}/")
                   for o in stores["out"].list(prefix)]
        with meter.measure(cpu["b2"]):
            b2_seconds = io_floor(stores["a"], stores["b"], stores["out"], a_keys, b_keys, outputs, args.workers)

        from failmap_assets.storage.day_manifest import committed_files
        from failmap_assets.storage.parquet_io import read_table
        pairs_df = read_table(stores["out"], committed_files(stores["out"], "failmap", DAY, "failmap_pairs")[0])
        pairs = [(r["a_key"], r["b_key"]) for r in pairs_df.filter(pairs_df["a_key"].is_not_null()).iter_rows(named=True)]
        with meter.measure(cpu["c"]):
            c_seconds = naive(stores["a"], stores["b"], stores["out"], pairs)

        d = a["dies"]
        cores = os.cpu_count() or 1
        print(f"\nfailmap day benchmark: {len(pairs)} A objects ({sum(1 for _, b in pairs if b)} with B), "
              f"{d.get('wafers')} wafers, {d.get('dies')} dies, SeaweedFS on loopback, {cores} cores")
        print(f"outputs of (a): {len(outputs)} objects, {sum(outputs) / 1e6:.0f} MB (PNG + JSON + Parquet parts)")
        print(f"{'':5}{'way':<54}{'seconds':>8}{'wafers/s':>9}{'client CPU':>11}{'server CPU':>11}{'CPU bound':>10}")
        for label, name, secs, used in (
                ("(a)", "materialization (Dagster, failmap group)", a["seconds"], cpu["a"]),
                ("", "  of which the day runner (list, pair, process, commit)", d.get("run_seconds", float("nan")), None),
                ("(b)", "floor: GET + decompress only", b_seconds, cpu["b"]),
                ("(b')", f"I/O floor: (b) + PUT {len(outputs)} outputs of (a)'s sizes", b2_seconds, cpu["b2"]),
                ("(c)", "naive sequential (Python line loop, A then B)", c_seconds, cpu["c"])):
            row = f"{label:<5}{name:<54}{secs:>8.2f}{len(pairs) / secs:>9.1f}"
            if used:
                bound = (used["client_cpu"] + used["server_cpu"]) / cores
                row += f"{used['client_cpu']:>11.1f}{used['server_cpu']:>11.1f}{bound:>10.1f}"
            print(row)
        print("  (a)'s client CPU includes starting Python, importing Dagster and the whole group's run;")
        print("  CPU bound = (client + server CPU) / cores: no way can be faster on this machine.")
        print(f"\na/b = {a['seconds'] / b_seconds:.2f}   (goal <= 1.5)")
        print(f"a/b' = {a['seconds'] / b2_seconds:.2f}")
        print(f"a/c = {a['seconds'] / c_seconds:.3f}  (goal <= 0.1)")
        print(f"peak RSS of (a): {a['peak_rss_mb']:.0f} MB (goal <= 1024)")
        return 0
    finally:
        stop_server(proc, server)


if __name__ == "__main__":
    raise SystemExit(main())
