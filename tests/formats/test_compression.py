"""Magic-byte detection, unpacking of every stream/archive kind, bombs and damage."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import stat
import tarfile
import tracemalloc
import zipfile
import zlib

import ncompress
import py7zr
import pytest

from failmap_assets.formats.compression import Member, detect_compression, unpack
from failmap_assets.wafer.rejects import Rejected

TEXT = b"FAILMAP 1\nLOT N4A123.1\nWAFER 07\nSTIME 20260111_143025\nDIES 1\n0 0 1\nEND\n" * 20
FILES = [("wafer_07.txt", TEXT + b"# 07\n"), ("a_first.txt", TEXT + b"# first\n"), ("sub/wafer_02.txt", TEXT + b"# 02\n")]
IN_NAME_ORDER = sorted(FILES)


def make_tar(files, mode="w", specials=True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if specials:
            for name, kind in (("adir", tarfile.DIRTYPE), ("link", tarfile.SYMTYPE), ("fifo", tarfile.FIFOTYPE), ("dev", tarfile.CHRTYPE)):
                info = tarfile.TarInfo(name)
                info.type = kind
                info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
                tf.addfile(info)
    return buf.getvalue()


def make_zip(files, specials=True, method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in files:
            zf.writestr(name, data)
        if specials:
            zf.writestr("adir/", b"")
            link = zipfile.ZipInfo("link")
            link.create_system = 3
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(link, b"/etc/passwd")
    return buf.getvalue()


def make_7z(files) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        for name, data in files:
            z.writestr(data, name)
    return buf.getvalue()


def streaming_gzip_of_zeros(mib: int) -> bytes:
    # Built chunk by chunk so the test itself never holds the expanded data.
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zero = bytes(1 << 20)
    return b"".join([comp.compress(zero) for _ in range(mib)] + [comp.flush()])


SINGLE_STREAMS = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "Z": ncompress.compress,
}


@pytest.mark.parametrize("kind", sorted(SINGLE_STREAMS))
def test_single_stream_round_trip(kind):
    blob = SINGLE_STREAMS[kind](TEXT)
    assert detect_compression(blob) == kind
    assert unpack(blob) == [Member(None, TEXT)]


def test_plain_text_is_returned_as_is():
    assert detect_compression(TEXT) == "plain"
    assert unpack(TEXT) == [Member(None, TEXT)]


def test_empty_object_is_plain():
    assert detect_compression(b"") == "plain"
    assert unpack(b"") == [Member(None, b"")]


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz"])
def test_concatenated_streams_are_one_text(kind):
    blob = SINGLE_STREAMS[kind](TEXT[:100]) + SINGLE_STREAMS[kind](TEXT[100:])
    assert unpack(blob) == [Member(None, TEXT)]


def test_gzip_zero_padding_after_the_stream_is_tolerated():
    assert unpack(gzip.compress(TEXT) + bytes(512)) == [Member(None, TEXT)]


@pytest.mark.parametrize(
    ("kind", "blob"),
    [
        ("tar", lambda: make_tar(FILES)),
        ("gz", lambda: make_tar(FILES, "w:gz")),     # .tar.gz / .tgz
        ("bz2", lambda: make_tar(FILES, "w:bz2")),
        ("xz", lambda: make_tar(FILES, "w:xz")),
        ("Z", lambda: ncompress.compress(make_tar(FILES))),
        ("zip", lambda: make_zip(FILES)),
        ("zip", lambda: make_zip(FILES, method=zipfile.ZIP_STORED)),
        ("zip", lambda: make_zip(FILES, method=zipfile.ZIP_BZIP2)),
        ("zip", lambda: make_zip(FILES, method=zipfile.ZIP_LZMA)),
        ("7z", lambda: make_7z(FILES)),
    ],
)
def test_archives_give_regular_members_in_name_order(kind, blob):
    data = blob()
    assert detect_compression(data) == kind
    members = unpack(data)
    # directories, symlinks, fifos and devices are skipped; names are labels only
    assert [(m.name, m.data) for m in members] == IN_NAME_ORDER


def test_7z_directories_and_symlinks_are_skipped(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "map.txt").write_bytes(TEXT)
    (tmp_path / "link").symlink_to("/etc/passwd")
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writeall(tmp_path, "root")
    assert unpack(buf.getvalue()) == [Member("root/sub/map.txt", TEXT)]


def test_single_member_archive():
    assert unpack(make_zip([("map.txt", TEXT)], specials=False)) == [Member("map.txt", TEXT)]


def test_empty_zip_has_no_members():
    data = make_zip([], specials=False)
    assert data.startswith(b"PK\x05\x06")
    assert detect_compression(data) == "zip"
    assert unpack(data) == []


def test_member_names_are_never_paths():
    # A traversal name comes back as a plain label and nothing is written to disk.
    members = unpack(make_tar([("../../etc/evil.txt", TEXT)], specials=False))
    assert members == [Member("../../etc/evil.txt", TEXT)]
    members = unpack(make_zip([("/abs/evil.txt", TEXT)], specials=False))
    assert members == [Member("/abs/evil.txt", TEXT)]


@pytest.mark.parametrize(
    ("lying_name", "blob", "kind"),
    [
        ("map.Z", gzip.compress(TEXT), "gz"),
        ("map.gz", ncompress.compress(TEXT), "Z"),
        ("map.zip", make_tar(FILES), "tar"),
        ("map.txt", bz2.compress(TEXT), "bz2"),
        ("map.7z", TEXT, "plain"),
    ],
)
def test_extension_is_ignored_magic_bytes_decide(lying_name, blob, kind):
    assert detect_compression(blob) == kind
    assert b"".join(m.data for m in unpack(blob)).startswith(TEXT)


def test_text_with_ustar_at_257_is_still_text():
    # Only a valid tar header checksum makes "ustar" at 257 a tar archive.
    text = (b"# " + b"x" * 254 + b"\n")[:257] + b"ustar" + TEXT
    assert detect_compression(text) == "plain"


def test_bz2_magic_needs_the_block_size_digit():
    assert detect_compression(b"BZhello world") == "plain"


# ---------------------------------------------------------------- bombs


def test_ratio_bomb_is_refused_without_allocating_the_output():
    blob = bz2.compress(bytes(20 << 20))        # ~50 bytes expanding to 20 MiB
    assert len(blob) < 200
    tracemalloc.start()
    try:
        with pytest.raises(Rejected) as exc:
            unpack(blob)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.value.reason == "bomb"
    assert peak < 2 << 20, f"peak {peak} bytes: the bomb was expanded"


def test_size_limit_is_enforced_while_inflating():
    blob = streaming_gzip_of_zeros(64)           # 64 MiB of zeros, ~65 KB compressed
    tracemalloc.start()
    try:
        with pytest.raises(Rejected) as exc:
            unpack(blob, max_bytes=1 << 20, max_ratio=1e9)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.value.reason == "bomb" and "limit" in exc.value.detail
    assert peak < 8 << 20


def test_unix_compress_bomb_is_stopped_by_the_bounded_sink():
    blob = ncompress.compress(bytes(16 << 20))   # LZW: ~8.6 KB for 16 MiB (ratio ~1950)
    with pytest.raises(Rejected) as exc:
        unpack(blob)
    assert exc.value.reason == "bomb"
    # With a ratio limit of 100 (~860 KB allowed) the sink must stop LZW early.
    tracemalloc.start()
    try:
        with pytest.raises(Rejected) as exc:
            unpack(blob, max_ratio=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.value.reason == "bomb"
    assert peak < 3 << 20


@pytest.mark.parametrize(
    "make",
    [
        lambda: lzma.compress(bytes(8 << 20)),
        lambda: make_zip([("z.txt", bytes(8 << 20))], specials=False),
        lambda: make_7z([("z.txt", bytes(8 << 20))]),
        lambda: make_tar([("z.txt", bytes(8 << 20))], "w:gz", specials=False),
    ],
    ids=["xz", "zip", "7z", "tgz"],
)
def test_every_kind_refuses_ratio_bombs(make):
    with pytest.raises(Rejected) as exc:
        unpack(make())
    assert exc.value.reason == "bomb"


def test_xz_asking_for_a_huge_dictionary_is_a_memory_bomb():
    # Rewrite the LZMA2 dictionary-size property to 4 GiB (and fix the block
    # header CRC): liblzma would allocate it up front, whatever the output size.
    blob = bytearray(lzma.compress(TEXT))
    size = (blob[12] + 1) * 4
    header = blob[12 : 12 + size]
    at = header.index(b"\x21\x01")          # filter id LZMA2, 1 property byte
    header[at + 2] = 40
    header[-4:] = zlib.crc32(bytes(header[:-4])).to_bytes(4, "little")
    blob[12 : 12 + size] = header
    with pytest.raises(Rejected) as exc:
        unpack(bytes(blob))
    assert exc.value.reason == "bomb" and "memory" in exc.value.detail


def test_zip_declared_sizes_are_checked_before_inflating():
    data = make_zip([("a.txt", bytes(4 << 20)), ("b.txt", bytes(4 << 20))], specials=False)
    with pytest.raises(Rejected) as exc:
        unpack(data, max_bytes=6 << 20, max_ratio=1e9)
    assert exc.value.reason == "bomb" and "declared" in exc.value.detail


def test_plain_object_over_the_size_limit_is_refused():
    with pytest.raises(Rejected) as exc:
        unpack(TEXT, max_bytes=100)
    assert exc.value.reason == "bomb"


def test_normal_compression_ratio_passes_the_guard():
    assert unpack(gzip.compress(TEXT * 50)) == [Member(None, TEXT * 50)]


# ---------------------------------------------------------------- damage


DAMAGED = [
    ("gz truncated", gzip.compress(TEXT)[:-12]),
    ("gz bad crc", gzip.compress(TEXT)[:-8] + b"\0\0\0\0" + gzip.compress(TEXT)[-4:]),
    ("gz trailing garbage", gzip.compress(TEXT) + b"garbage"),
    ("bz2 truncated", bz2.compress(TEXT)[:-10]),
    ("xz truncated", lzma.compress(TEXT)[:-10]),
    ("Z corrupt", b"\x1f\x9d\x90" + bytes(range(200, 256)) * 3),
    ("zip truncated", make_zip(FILES)[:-40]),
    ("zip no directory", make_zip(FILES)[:60]),
    ("7z truncated", make_7z(FILES)[:-20]),
    ("7z header only", make_7z(FILES)[:40]),
    ("tar truncated member", make_tar(FILES, specials=False)[:700]),
    ("tgz truncated", make_tar(FILES, "w:gz")[:-30]),
]


# ids from the names: gzip output carries the current time, so ids made from the bytes
# would differ between pytest-xdist workers collecting a second apart
@pytest.mark.parametrize(("name", "blob"), DAMAGED, ids=[name for name, _ in DAMAGED])
def test_damaged_input_is_corrupt_archive(name, blob):
    with pytest.raises(Rejected) as exc:
        unpack(blob)
    assert exc.value.reason == "corrupt_archive"
    assert exc.value.detail


def test_truncated_unix_compress_yields_a_shorter_text():
    # LZW has no trailer: truncation shows as a text without END for the format layer.
    blob = ncompress.compress(TEXT)
    [member] = unpack(blob[: len(blob) // 2])
    assert TEXT.startswith(member.data) and len(member.data) < len(TEXT)


def test_encrypted_zip_member_is_corrupt_archive():
    data = bytearray(make_zip([("a.txt", TEXT)], specials=False))
    # Set the "encrypted" flag in both the local and the central header.
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = data.index(sig)
        flag_at = at + (6 if sig == b"PK\x03\x04" else 8)
        data[flag_at] |= 1
    with pytest.raises(Rejected) as exc:
        unpack(bytes(data))
    assert exc.value.reason == "corrupt_archive"


@pytest.mark.timeout(120)
def test_random_damage_never_escapes_as_another_exception():
    rng = random.Random(7)
    samples = [
        gzip.compress(TEXT), bz2.compress(TEXT), lzma.compress(TEXT), ncompress.compress(TEXT),
        make_zip(FILES), make_tar(FILES), make_tar(FILES, "w:gz"), make_7z(FILES),
]
    outcomes = {"ok": 0, "rejected": 0}
    for sample in samples:
        for _ in range(60):
            data = bytearray(sample)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.3:
                data = data[: rng.randrange(len(data))]
            try:
                members = unpack(bytes(data), max_bytes=1 << 22)
            except Rejected as exc:
                assert exc.reason in ("bomb", "corrupt_archive")
                outcomes["rejected"] += 1
            else:
                assert all(isinstance(m, Member) and isinstance(m.data, bytes) for m in members)
                outcomes["ok"] += 1
    assert outcomes["rejected"] > 0 and outcomes["ok"] > 0
