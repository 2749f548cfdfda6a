"""The object-key grammar: the scalar parser and the vectorised one agree on every key."""

from __future__ import annotations

import random
from datetime import date, datetime

import polars as pl
import pytest

from failmap_assets.discovery.keys import (
    EXTENSIONS,
    SKIP_REASONS,
    FailmapKey,
    key_day,
    key_skip_reason,
    key_time,
    parse_day_folder,
    parse_failmap_key,
    parse_file_name,
    parse_keys,
)

EXAMPLE_A = "20260111/N4A123.1_07P_20260111_143025.Z"


def test_contract_example_parses():
    k = parse_failmap_key(EXAMPLE_A)
    assert k == FailmapKey(
        key=EXAMPLE_A,
        day=date(2026, 1, 11),
        token="N4A123.1",
        slot=7,
        insertion="P",
        wafer_token="N4A123.1_07P",
        file_time=datetime(2026, 1, 11, 14, 30, 25),
        ext="Z",
    )


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_every_extension_in_the_contract(ext):
    k = parse_failmap_key(f"20260111/N4A123.1_07R_20260111_143030.{ext}")
    assert k is not None and k.ext == ext and k.insertion == "R"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("20261341/N4A_07P_20261341_143025.Z", "bad_date"),       # month 13, day 41
        ("20260230/N4A_07P_20260230_143025.Z", "bad_date"),       # 30 February
        ("21000229/N4A_07P_21000229_143025.Z", "bad_date"),       # 2100 is not a leap year
        ("00000101/N4A_07P_00000101_143025.Z", "bad_date"),       # no year 0
        ("20260111/N4A_07P_20260111_256060.Z", "bad_time"),
        ("20260111/N4A_07P_20260111_235960.Z", "bad_time"),       # no leap second
        ("20260112/N4A_07P_20260111_143025.Z", "date_mismatch"),
        ("20260111/N4A_00P_20260111_143025.Z", "bad_slot"),
        ("20260111/N4A_26P_20260111_143025.Z", "bad_slot"),
        ("20260111/.._07P_20260111_143025.Z", "unsafe_token"),
        ("20260111/N4A_07P_20260111_143025.rar", "pattern"),
        ("20260111/N4A_07P_20260111_143025.GZ", "pattern"),       # extensions are case-sensitive
        ("20260111/N4A_07P_20260111_143025", "pattern"),
        ("N4A_07P_20260111_143025.Z", "pattern"),                 # no day folder
        ("x/20260111/N4A_07P_20260111_143025.Z", "pattern"),
        ("20260111/../N4A_07P_20260111_143025.Z", "pattern"),
        ("20260111/N4A 1_07P_20260111_143025.Z", "pattern"),
        ("20260111/N4A_1_07P_20260111_143025.Z", "pattern"),      # "_" is not a token character
        ("20260111/N4A_7P_20260111_143025.Z", "pattern"),
        ("20260111/N4A_07PP_20260111_143025.Z", "pattern"),
        ("20260111/N4A_07P_20260111_143025.Z\n", "pattern"),
        ("２０２６0111/N4A_07P_２０２６0111_143025.Z", "pattern"),  # full-width digits
        ("20260111/N4Aé_07P_20260111_143025.Z", "pattern"),
        ("", "pattern"),
    ],
)
def test_keys_that_do_not_fit_are_skipped_with_a_reason(key, reason):
    assert parse_failmap_key(key) is None
    assert key_skip_reason(key) == reason
    row = parse_keys([key]).row(0, named=True)
    assert row["valid"] is False and row["skip_reason"] == reason
    assert row["token"] is None and row["file_time"] is None


def test_leap_day_and_day_boundaries_are_valid():
    assert parse_failmap_key("20240229/A_01P_20240229_000000.txt").day == date(2024, 2, 29)
    assert parse_failmap_key("20000229/A_25C_20000229_235959.txt").file_time == datetime(2000, 2, 29, 23, 59, 59)


def test_parse_keys_columns_and_types():
    df = parse_keys([EXAMPLE_A, "junk"])
    assert df.schema == pl.Schema(
        {
            "key": pl.String,
            "valid": pl.Boolean,
            "day": pl.Date,
            "token": pl.String,
            "slot": pl.Int32,
            "insertion": pl.String,
            "wafer_token": pl.String,
            "file_time": pl.Datetime("us"),
            "ext": pl.String,
            "skip_reason": pl.String,
        }
    )
    first = df.row(0, named=True)
    assert first["wafer_token"] == "N4A123.1_07P" and first["file_time"] == datetime(2026, 1, 11, 14, 30, 25)
    assert first["skip_reason"] is None


def test_parse_keys_accepts_a_series_with_nulls():
    df = parse_keys(pl.Series([None, EXAMPLE_A], dtype=pl.String))
    assert df["valid"].to_list() == [False, True]
    assert df["skip_reason"].to_list() == ["pattern", None]


def _random_key(rng: random.Random) -> str:
    """Mostly near-valid keys, each part randomly broken, plus raw junk."""
    if rng.random() < 0.3:
        when = datetime(2020, 1, 1) + (datetime(2030, 1, 1) - datetime(2020, 1, 1)) * rng.random()
        return (f"{when:%Y%m%d}/N{rng.randint(0, 999)}.{rng.randint(0, 9)}_{rng.randint(1, 25):02d}"
                f"{rng.choice('PRC')}_{when:%Y%m%d_%H%M%S}.{rng.choice(EXTENSIONS)}")
    if rng.random() < 0.05:
        alphabet = "0123456789/_.-aZ ü\n\\"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 45)))
    y = rng.choice([0, 1900, 2000, 2024, 2025, 2026, 2100, 9999])
    m = rng.randint(0, 13)
    d = rng.randint(0, 32)
    day = f"{y:04d}{m:02d}{d:02d}"
    other_day = day if rng.random() < 0.9 else f"{y:04d}{m:02d}{(d % 28) + 1:02d}"
    token = rng.choice(["N4A123.1", "LOT-9", "..", ".", "a.b", "X", "N4A 1", "N_4", "Ä1", ""])
    slot = rng.choice(["01", "07", "25", "00", "26", "99", "7", "1a"])
    ins = rng.choice(["P", "R", "C", "z", "", "PP", "1"])
    t = f"{rng.randint(0, 25):02d}{rng.randint(0, 61):02d}{rng.randint(0, 61):02d}"
    ext = rng.choice(list(EXTENSIONS) + ["rar", "TXT", "tar.Z", ""])
    key = f"{day}/{token}_{slot}{ins}_{other_day}_{t}.{ext}"
    if rng.random() < 0.05:
        key = rng.choice(["../", "/", " ", "x"]) + key
    if rng.random() < 0.05:
        key += rng.choice(["\n", " ", "/"])
    return key


def test_scalar_and_vectorised_parsers_agree_on_generated_keys():
    rng = random.Random(20260111)
    keys = [_random_key(rng) for _ in range(20_000)]
    df = parse_keys(keys)
    assert df.height == len(keys)
    seen_reasons = set()
    valid = 0
    for row in df.iter_rows(named=True):
        key = row["key"]
        parsed = parse_failmap_key(key)
        reason = key_skip_reason(key)
        assert row["skip_reason"] == reason, key
        assert row["valid"] is (parsed is not None), key
        seen_reasons.add(reason)
        if parsed is not None:
            valid += 1
            assert (row["day"], row["token"], row["slot"], row["insertion"], row["wafer_token"], row["file_time"], row["ext"]) == (
                parsed.day, parsed.token, parsed.slot, parsed.insertion, parsed.wafer_token, parsed.file_time, parsed.ext
            ), key
    # The generator must exercise every outcome, or the agreement proves little.
    assert seen_reasons == set(SKIP_REASONS) | {None}
    assert valid > 5000


@pytest.mark.parametrize(
    "text, expected",
    [("20260111/", date(2026, 1, 11)), ("20260230/", None), ("2026011/", None), ("2026-01-11/", None),
     ("20260111", None), ("abcdefgh/", None), ("٢٠٢٦٠١١١/", None)],
)
def test_parse_day_folder(text, expected):
    assert parse_day_folder(text) == expected


# ----- cursor ---------------------------------------------------------------------------


def test_key_day_and_time():
    assert key_day("20260111/x/y.stdf") == date(2026, 1, 11)
    assert key_day("20260111") is None and key_day("README") is None and key_day("2026011x/a") is None
    assert key_time("20260112/N4A123.1_07P_20260112_000004.gz") == datetime(2026, 1, 12, 0, 0, 4)
    assert key_time("20260112/N4A123.1_07P_20260112_000004.tar.gz") == datetime(2026, 1, 12, 0, 0, 4)
    assert key_time("20260112/N4A123.1_07P_20260112_256199.gz") is None
    assert key_time("20260112/junk.gz") is None


def test_parse_file_name_reads_a_bare_name_with_its_own_date():
    assert parse_file_name("N4A123.1_07P_20260111_143025.Z").wafer_token == "N4A123.1_07P"
    assert parse_file_name("N4A123.1_07P_20260111_143025.Z").day == date(2026, 1, 11)
    # other scripts' digits are not digits of the grammar
    assert parse_file_name("N4A123.1_07P_\u0662\u0660\u0662\u0666\u0660\u0661\u0661\u0661_143025.Z") is None
    assert parse_file_name("G345875.021") is None
