"""The canonical wafer and die model: one schema for every map family.

Every reader (fail-map A/B text, STDF, G85, E142, TSK, ASCII maps, KLARF) produces
``WaferMap`` objects; rendering (PNG, JSON) and the ``failmap_dies`` Parquet table
consume them. Coordinates are in the canonical drawing frame: x grows to the right,
y grows downward (as a tester prints a map). Readers keep the file's original
coordinates and orientation fields in ``orig_x`` / ``orig_y`` / ``extra``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

FLAT_SIDES = ("U", "D", "L", "R")


@dataclass
class WaferMap:
    """One wafer's dies after retest resolution (each (x, y) at most once)."""

    format: str                      # "failmap", "stdf", "g85", "e142", "tsk", "ascii:<dialect>", "klarf"
    x: np.ndarray                    # int32, canonical frame
    y: np.ndarray                    # int32, canonical frame
    bin: np.ndarray                  # int32, 0..65535 (KLARF: defect count)
    retest_count: np.ndarray         # int16 per die: how many earlier rows this die replaced
    lot: str | None = None
    wafer: str | None = None
    product: str | None = None
    step: str | None = None
    tester: str | None = None
    partid: str | None = None
    stime: str | None = None         # "YYYYMMDD_HHMMSS" when known
    flat: str = "D"                  # notch / flat side in the canonical frame: U, D, L, R
    die_size: tuple[float, float] | None = None   # mm (width, height)
    origin: tuple[int, int] | None = None         # reference die
    bin_pass: dict[int, bool] = field(default_factory=dict)   # explicit pass/fail per bin
    bin_names: dict[int, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)       # unknown header keys, original orientation fields
    orig_x: np.ndarray | None = None  # file's own coordinates where they differ from x/y
    orig_y: np.ndarray | None = None
    rows_read: int = 0                # die rows in the file before retest resolution

    def __post_init__(self) -> None:
        n = len(self.x)
        if not (len(self.y) == n and len(self.bin) == n and len(self.retest_count) == n):
            raise ValueError("x, y, bin and retest_count must have the same length")
        if self.flat not in FLAT_SIDES:
            raise ValueError(f"flat must be one of {FLAT_SIDES}, not {self.flat!r}")

    @property
    def die_count(self) -> int:
        return int(len(self.x))

    def is_pass(self, bins: np.ndarray | None = None) -> np.ndarray:
        """Pass flag per die: the file's / config's verdict, else bin 1 passes."""
        b = np.asarray(self.bin if bins is None else bins)
        # The passing bins as one set: a pass over the dies per passing bin (usually one
        # or two), not a pass per BINDEF line.
        passing = [bin_no for bin_no, ok in self.bin_pass.items() if ok]
        if 1 not in self.bin_pass:
            passing.append(1)
        return np.isin(b, np.asarray(passing, dtype=np.int64))


@dataclass
class CompanionMap:
    """A bucket-B file: the second station's per-die bin and measured values."""

    x: np.ndarray                    # int32
    y: np.ndarray                    # int32
    bin: np.ndarray                  # int32
    values: np.ndarray               # float64, shape (n, k); NaN where the file says NA
    values_na: np.ndarray            # bool, shape (n, k); True where the file says NA
    values_text: list[str] | pa.Array  # per die: the values joined with ",", NA kept as "NA"
    value_names: list[str]
    stime: str
    partid: str | None = None
    tester: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    retest_count: np.ndarray | None = None

    @property
    def die_count(self) -> int:
        return int(len(self.x))


# One row per die of the canonical table (Parquet: failmap_dies).
DIE_TABLE_SCHEMA = pa.schema(
    [
        ("wafer_token", pa.string()),
        ("source_format", pa.string()),
        ("lot", pa.string()),
        ("wafer", pa.string()),
        ("product", pa.string()),
        ("step", pa.string()),
        ("tester", pa.string()),
        ("partid", pa.string()),
        ("stime", pa.string()),
        ("x", pa.int32()),
        ("y", pa.int32()),
        ("bin", pa.int32()),
        ("pass", pa.bool_()),
        ("retest_count", pa.int16()),
        ("latest", pa.bool_()),            # the wafer's latest test event (wafer/events.py)
        ("in_a", pa.bool_()),              # False: a B die with no A die at this (x, y)
        ("b_bin", pa.int32()),
        ("b_tester", pa.string()),
        ("b_stime", pa.string()),
        ("b_partid", pa.string()),
        ("b_values", pa.list_(pa.float64())),   # null element where B says NA
        ("b_values_text", pa.string()),
        ("a_key", pa.string()),
        ("a_etag", pa.string()),
        ("b_key", pa.string()),
        ("b_etag", pa.string()),
    ]
)

# String columns holding one value per wafer (or per wafer's B partner). In memory a
# wafer's rows carry them dictionary-encoded (one string, an int32 index per die):
# ~15 columns of the same 40-byte string per die cost more than parsing the files did,
# both to build and for the Parquet writer to hash back into a dictionary. On disk they
# are ordinary (dictionary-paged) Parquet strings; see parquet_io.write_table.
PER_WAFER_COLUMNS = frozenset({
    "wafer_token", "source_format", "lot", "wafer", "product", "step", "tester", "partid", "stime",
    "b_tester", "b_stime", "b_partid", "a_key", "a_etag", "b_key", "b_etag",
})
PER_WAFER_TYPE = pa.dictionary(pa.int32(), pa.string())
# The schema of die rows in memory (``wafer_processing.die_rows``).
DIE_ROWS_SCHEMA = pa.schema(
    [pa.field(f.name, PER_WAFER_TYPE) if f.name in PER_WAFER_COLUMNS else f for f in DIE_TABLE_SCHEMA]
)


def _die_keys(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # One int64 per die so matching is a sort + binary search, not a dict per die.
    return (np.asarray(x, dtype=np.int64) << 32) | (np.asarray(y, dtype=np.int64) & 0xFFFFFFFF)


def match_dies(a_x: np.ndarray, a_y: np.ndarray, b_x: np.ndarray, b_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each A die, the index of the B die at the same (x, y), or -1.

    Returns ``(b_index_per_a, b_unmatched)``: the second is the indices of B dies with
    no A die at their (x, y) (kept in the tables, never dropped). Both inputs must
    already hold each (x, y) once (retests resolved).
    """
    a_keys = _die_keys(a_x, a_y)
    b_keys = _die_keys(b_x, b_y)
    order = np.argsort(b_keys, kind="stable")
    sorted_b = b_keys[order]
    pos = np.searchsorted(sorted_b, a_keys)
    pos_clipped = np.minimum(pos, max(len(sorted_b) - 1, 0))
    found = (pos < len(sorted_b)) & (sorted_b[pos_clipped] == a_keys) if len(sorted_b) else np.zeros(len(a_keys), bool)
    b_index = np.where(found, order[pos_clipped] if len(sorted_b) else -1, -1).astype(np.int64)
    matched_b = np.zeros(len(b_keys), dtype=bool)
    matched_b[b_index[b_index >= 0]] = True
    return b_index, np.flatnonzero(~matched_b)
