"""Committed signature days without the pipelines: a synthetic product's signature rows
(embeddings around a few pattern centres, some normal wafers) committed through the
real day protocol, for the pattern index tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from failmap_assets.patterns.signature import EMBEDDING_DIM, RASTER_SIZE, SIGNATURE_VERSION
from failmap_assets.patterns.tables import SIGNATURE_COLUMNS, schema_of
from failmap_assets.pipeline.day_commit import DaySession
from failmap_assets.pipeline.day_lease import LeaseOptions
from failmap_assets.storage.day_manifest import DayManifest
from failmap_assets.storage.layout import PATTERNS_PIPELINE, table_file
from failmap_assets.storage.object_store import ObjectStore
from failmap_assets.storage.parquet_io import write_table

LABELS = ("none", "Center", "Edge-Ring", "Scratch")


def centres(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((len(LABELS), EMBEDDING_DIM)).astype(np.float32)


def signature_rows(day: date, wafers: int, *, product: str = "P1", seed: int = 0, lot: str | None = None,
                   outliers: int = 0, steps: tuple[str, ...] = ("S1",)) -> pl.DataFrame:
    """``wafers`` test events of ``product`` on ``day``: half normal, the rest spread over
    the pattern classes, each an embedding near its class centre; ``outliers`` more
    normal-labelled wafers far from every centre (low confidence, so not in the bank)."""
    rng = np.random.default_rng([seed, day.toordinal()])
    c = centres()
    labels = [LABELS[0] if i % 2 == 0 else LABELS[1 + (i // 2) % (len(LABELS) - 1)] for i in range(wafers)]
    emb = np.stack([c[LABELS.index(lab)] for lab in labels]) if wafers else np.zeros((0, EMBEDDING_DIM))
    emb = emb + 0.2 * rng.standard_normal(emb.shape)
    conf = np.full(wafers, 0.95)
    if outliers:
        emb = np.vstack([emb, 4 * rng.standard_normal((outliers, EMBEDDING_DIM))])
        labels += ["Random"] * outliers
        conf = np.concatenate([conf, np.full(outliers, 0.5)])
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    n = len(labels)
    lot = lot or f"L{day.strftime('%m%d')}"
    start = datetime(day.year, day.month, day.day, 8)
    schema = schema_of(SIGNATURE_COLUMNS)
    frame = pl.DataFrame({
        "source": ["failmap"] * n, "wafer_token": [f"{lot}_{i:02d}" for i in range(n)],
        "object_key": [f"{day:%Y%m%d}/{lot}_{i:02d}_P.txt" for i in range(n)], "lot": [lot] * n,
        "wafer": [f"{i:02d}" for i in range(n)], "insertion": ["P"] * n, "product": [product] * n,
        "step": [steps[i % len(steps)] for i in range(n)],
        "file_time": [start + timedelta(minutes=i) for i in range(n)],
        "latest": [True] * n, "flat": ["D"] * n, "die_aspect": [1.0] * n, "die_aspect_known": [False] * n,
        "label": labels, "confidence": conf.tolist(), "evidence": ["synthetic"] * n, "dies": [400] * n,
        "fail_dies": [20] * n,
    }, schema={k: v for k, v in schema.items() if k not in ("embedding", "raster")})
    return frame.with_columns(
        pl.Series("embedding", emb, schema["embedding"]),
        pl.Series("raster", [np.zeros(RASTER_SIZE * RASTER_SIZE, np.float32)] * n, schema["raster"]),
    ).select(list(schema))


def commit_signature_day(store: ObjectStore, day: date, frame: pl.DataFrame, run_id: str = "test",
                         signature_version: str = SIGNATURE_VERSION) -> DayManifest:
    """Commit ``frame`` as the day's wafer_signatures (lease, tagged file, manifest CAS),
    signed by ``signature_version`` (this code's unless a test says otherwise)."""
    with DaySession(store, PATTERNS_PIPELINE, day, run_id, lease=LeaseOptions(), log=lambda _: None) as session:
        key = table_file("wafer_signatures", day, session.tag)
        write_table(store, key, frame)
        products = sorted({p or "unknown" for p in frame["product"].to_list()})
        return session.commit(DayManifest(pipeline=PATTERNS_PIPELINE, day=day, tables={"wafer_signatures": [key]},
                                          inputs=f"test-{session.tag}",
                                          totals={"products": products, "rows": {"wafer_signatures": frame.height},
                                                  "signature_version": signature_version}))
