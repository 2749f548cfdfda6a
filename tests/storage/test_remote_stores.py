"""ftp:// and sftp:// sources against real servers on 127.0.0.1 (pyftpdlib, asyncssh;
tests/support/file_servers.py): the ObjectStore reads, the settle rule for files still
being written, names, credentials and host keys. The tests write into the served
folder directly, as a tester writes to its own disk."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from failmap_assets.settings import Settings, problems
from failmap_assets.storage import remote_store
from failmap_assets.storage.locations import cached_store, open_store, parse_remote_url
from failmap_assets.storage.object_store import PreconditionFailed, UnsafeKey
from failmap_assets.storage.remote_listing import child_key, is_settled
from failmap_assets.storage.remote_store import HostKeyRefused, LoginRefused, ReadOnlyStore
from tests.support.file_servers import FileServer, fresh_folder, server_env

OLD = time.time() - 3600  # an mtime long settled


def write(root: Path, key: str, data: bytes, mtime: float | None = OLD) -> Path:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def keys(infos) -> list[str]:
    return [i.key for i in infos]


# -- the listing rule, without a server ------------------------------------------------------


def test_child_key_refuses_names_that_could_leave_the_prefix() -> None:
    assert child_key("20260111/", "lot 7 wafer é.stdf") == "20260111/lot 7 wafer é.stdf"
    for name in ("..", ".", "", "a/b", "a\\b", "a\nb", "a\rb", "x\x00", "\x7f", ".~tmp-x", None, b"bytes"):
        assert child_key("20260111/", name) is None, name
    assert child_key("", "x" * 1025) is None


def test_settled_means_untouched_for_settle_seconds_plus_the_mtime_granularity() -> None:
    s = 1_000_000_000
    now = 1_800_000_000 * s
    assert not is_settled(now - 10 * s, now, 10)      # 10 s old: may be the last second of writing
    assert is_settled(now - 11 * s, now, 10)
    assert not is_settled(now + 5 * s, now, 10)       # a server clock ahead of ours: later
    assert is_settled(now, now, 0)                    # 0 turns the rule off


def test_locations_parse_and_never_carry_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_remote_url("sftp://tester.fab:2222/data/stdf") == ("sftp", "tester.fab", 2222, "/data/stdf")
    assert parse_remote_url("FTP://10.1.2.3/out%20put") == ("ftp", "10.1.2.3", 21, "/out put")
    assert parse_remote_url("sftp://h") == ("sftp", "h", 22, "")
    assert parse_remote_url("s3://bucket/x") is None and parse_remote_url("/data") is None
    with pytest.raises(ValueError) as refused:
        parse_remote_url("sftp://op:hunter2secret@tester.fab/data")
    assert "hunter2secret" not in str(refused.value) and "FAILMAP_SFTP_USER" in str(refused.value)
    for bad in ("sftp://:22/x", "ftp://h:99999/x", "ftp://h/x?y=1"):
        with pytest.raises(ValueError):
            parse_remote_url(bad)
    monkeypatch.setenv("FAILMAP_SFTP_PASSWORD", "hunter2secret")
    store = open_store("sftp://tester.fab/data")
    assert store.location == "sftp://tester.fab:22/data"
    assert "hunter2secret" not in repr(store) + repr(Settings.from_env()) + repr(store.__dict__)


def test_settings_know_the_remote_variables() -> None:
    env = {"FAILMAP_FTP_USER": "u", "FAILMAP_SFTP_KEY_FILE": "/k", "FAILMAP_REMOTE_SETTLE_SECONDS": "2.5",
           "FAILMAP_SFTP_INSECURE_ACCEPT_ANY_HOST_KEY": "yes", "FAILMAP_REMOTE_MAX_CONNECTIONS": "2"}
    s = Settings.from_env(env)
    assert (s.ftp_user, s.sftp_key_file, s.remote_settle_seconds) == ("u", "/k", 2.5)
    assert s.sftp_insecure_accept_any_host_key is True and s.remote_max_connections == 2
    assert Settings.from_env({}).sftp_insecure_accept_any_host_key is False
    assert Settings.from_env({}).remote_settle_seconds == 30.0
    assert problems(env) == []
    assert problems({"FAILMAP_SFTP_INSECURE_ACCEPT_ANY_HOST_KEY": "maybe", "FAILMAP_REMOTE_SETTLE_SECONDS": "-1"})


# -- against the servers ---------------------------------------------------------------------


def test_listing_nested_folders_many_files_in_key_order(file_server: FileServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    server_env(file_server, monkeypatch)
    root, url = fresh_folder(file_server)
    files = {f"20260111/lot{i % 7}/w{i:03d}.stdf": b"x" * (i + 1) for i in range(240)}
    files |= {"20260111/a b/ü 中文 wafer.stdf": b"unicode", "20260111-x": b"beside", "20260112/deep/er/f": b"f",
              "20260111/lot0/.hidden": b"h", "top": b"t"}
    for key, data in files.items():
        write(root, key, data)
    write(root, "20260111/bad\\name", b"a backslash cannot be in a key")
    (root / "20260111" / "empty").mkdir()
    if file_server.scheme == "sftp":  # SFTP reports links as links (pyftpdlib shows their target)
        (root / "20260111" / "link").symlink_to(root / "20260112")
    store = open_store(url)

    listed = list(store.list())
    assert keys(listed) == sorted(files, key=lambda k: k.encode())
    info = {i.key: i for i in listed}
    assert info["20260111/lot3/w010.stdf"].size == 11
    mtime_ns = int(OLD) * 1_000_000_000
    assert info["top"].etag == f"{file_server.scheme}-1-{mtime_ns}"
    assert info["top"].last_modified == datetime.fromtimestamp(int(OLD), UTC)

    day = keys(store.list("20260111/"))
    assert len(day) == 242 and all(k.startswith("20260111/") for k in day)
    assert keys(store.list("20260111/lot1/w00")) == ["20260111/lot1/w001.stdf", "20260111/lot1/w008.stdf"]
    after = keys(store.list("20260111/", start_after="20260111/lot5/w215.stdf"))
    assert after == [k for k in day if k > "20260111/lot5/w215.stdf"]
    assert keys(store.list("", limit=3)) == sorted(files, key=lambda k: k.encode())[:3]
    assert keys(store.list("20260113/")) == []
    assert store.list_prefixes() == ["20260111/", "20260112/"]
    assert store.list_prefixes("20260111/lot") == [f"20260111/lot{i}/" for i in range(7)]
    head = store.head("20260111/a b/ü 中文 wafer.stdf")
    assert head == info["20260111/a b/ü 中文 wafer.stdf"]
    assert store.get("20260111/a b/ü 中文 wafer.stdf") == b"unicode"
    assert store.head("20260111/lot0") is None and store.head("nothing") is None


def test_get_is_tied_to_the_listed_version(file_server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server_env(file_server, monkeypatch)
    root, url = fresh_folder(file_server)
    store = open_store(url)
    path = write(root, "20260111/w.stdf", b"first version")
    listed = next(iter(store.list()))
    assert store.get(listed.key, if_match=listed.etag) == b"first version"
    with store.open(listed.key) as f:
        assert f.read(5) == b"first" and f.read() == b" version"

    write(root, "20260111/w.stdf", b"second, longer version", OLD + 60)
    now = store.head(listed.key)
    assert now.etag != listed.etag and now.size == 22
    with pytest.raises(PreconditionFailed):
        store.get(listed.key, if_match=listed.etag)
    assert store.get(listed.key, if_match=now.etag) == b"second, longer version"

    write(root, "20260111/w.stdf", b"same size, new time!!!", OLD + 120)  # 22 bytes again
    assert store.head(listed.key).etag != now.etag

    path.unlink()
    assert store.head(listed.key) is None
    for pinned in (None, now.etag):
        with pytest.raises(FileNotFoundError):
            store.get(listed.key, if_match=pinned)
    with pytest.raises(FileNotFoundError):
        store.open(listed.key)
    for key in ("../x", "/etc/passwd", "a/../../x", "a\nRETR x", "a\\b"):
        with pytest.raises(UnsafeKey):
            store.get(key)


def test_a_file_that_changes_during_the_download_is_refused(file_server: FileServer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    server_env(file_server, monkeypatch)
    root, url = fresh_folder(file_server)
    store = open_store(url)
    path = write(root, "20260111/w.stdf", b"A" * 100_000)
    listed = store.head("20260111/w.stdf")
    real_connect = store._connect

    def connect():  # a session whose downloads race a writer appending to the file
        session = real_connect()
        download = session.download

        def racing(remote_path, sink):
            with open(path, "ab") as f:
                f.write(b"more")
            download(remote_path, sink)
        session.download = racing
        return session

    store.close()  # the pooled session of head() would not race
    monkeypatch.setattr(store, "_connect", connect)
    with pytest.raises(PreconditionFailed, match="changed"):
        store.get("20260111/w.stdf", if_match=listed.etag)
    # unpinned: every try sees it grow, and it is never returned torn
    store.options = remote_store.RemoteOptions(attempts=2, backoff=0.01)
    with pytest.raises(ConnectionError, match="changed while being read"):
        store.get("20260111/w.stdf")


def test_a_growing_file_is_listed_only_once_settled(file_server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    settle = 1.0
    server_env(file_server, monkeypatch, settle=settle)
    root, url = fresh_folder(file_server)
    store = open_store(url)
    write(root, "20260111/done.stdf", b"complete")
    path = root / "20260111" / "growing.stdf"
    with open(path, "wb") as f:
        for step in range(5):  # a tester writing its file over 2 s
            f.write(b"part %d\n" % step)
            f.flush()
            assert keys(store.list("20260111/")) == ["20260111/done.stdf"], f"listed while written, step {step}"
            assert store.head("20260111/growing.stdf").size == 7 * (step + 1)  # head sees it as it is
            time.sleep(0.5)
    last_write = path.stat().st_mtime
    while "20260111/growing.stdf" not in keys(store.list("20260111/")):
        assert time.time() < last_write + settle + 3, "not listed after it settled"
        time.sleep(0.2)
    assert time.time() >= last_write + settle  # never before it was left alone for settle
    listed = {i.key: i for i in store.list("20260111/")}["20260111/growing.stdf"]
    assert listed.size == 35 and store.get(listed.key, if_match=listed.etag).endswith(b"part 4\n")


def test_sources_are_read_only(file_server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server_env(file_server, monkeypatch)
    root, url = fresh_folder(file_server)
    write(root, "k", b"x")
    store = open_store(url)
    for attempt in (lambda: store.put("k", b"y"), lambda: store.delete("k"), store.check_conditional_writes):
        with pytest.raises(ReadOnlyStore, match="read-only source"):
            attempt()
    assert (root / "k").read_bytes() == b"x"


def test_a_wrong_password_is_a_clear_error_without_the_password(file_server: FileServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    server_env(file_server, monkeypatch)
    _, url = fresh_folder(file_server)
    wrong = "Wr0ng-pa55word-xyz"
    monkeypatch.setenv("FAILMAP_FTP_PASSWORD" if file_server.scheme == "ftp" else "FAILMAP_SFTP_PASSWORD", wrong)
    started = time.monotonic()
    with pytest.raises(LoginRefused) as refused:
        list(open_store(url).list())
    text = str(refused.value) + repr(refused.value) + str(refused.value.__cause__) + str(refused.value.__context__)
    assert wrong not in text and file_server.password not in text
    assert "refused" in text and "PASSWORD" in text and file_server.user in text
    assert time.monotonic() - started < 10  # a refused login is an answer, not retried with backoff


def test_a_missing_root_folder_is_an_error_a_missing_day_is_empty(file_server: FileServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    server_env(file_server, monkeypatch)
    _, url = fresh_folder(file_server)
    assert keys(open_store(url).list("20260111/")) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(open_store(url + "-missing").list())


def test_sftp_refuses_an_unknown_or_changed_host_key(sftp_server: FileServer, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server_env(sftp_server, monkeypatch)
    root, url = fresh_folder(sftp_server)
    write(root, "k", b"x")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    for known_hosts, why in ((empty, "is not in"), (tmp_path / "absent", "is not in"),
                             (sftp_server.other_known_hosts, "holds another")):
        monkeypatch.setenv("FAILMAP_SFTP_KNOWN_HOSTS", str(known_hosts))
        with pytest.raises(HostKeyRefused, match=why) as refused:
            list(open_store(url).list())
        assert "SHA256:" in str(refused.value)
    # the documented, insecure opt-out
    monkeypatch.setenv("FAILMAP_SFTP_KNOWN_HOSTS", str(empty))
    monkeypatch.setenv("FAILMAP_SFTP_INSECURE_ACCEPT_ANY_HOST_KEY", "1")
    assert keys(open_store(url).list()) == ["k"]
    assert "INSECURE" in caplog.text


def test_sftp_logs_in_with_a_key_file(sftp_server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server_env(sftp_server, monkeypatch)
    monkeypatch.delenv("FAILMAP_SFTP_PASSWORD")
    monkeypatch.setenv("FAILMAP_SFTP_KEY_FILE", str(sftp_server.key_file))
    root, url = fresh_folder(sftp_server)
    write(root, "k", b"by key")
    store = cached_store(url)
    assert store.get("k") == b"by key"
    assert cached_store(url) is store
    monkeypatch.setenv("FAILMAP_SFTP_KEY_FILE", str(sftp_server.known_hosts))  # not a key: a new store, refused
    with pytest.raises(LoginRefused, match="FAILMAP_SFTP_KEY_FILE .* is not a private key"):
        cached_store(url).get("k")
    assert cached_store(url) is not store


def test_concurrent_reads_share_a_bounded_pool(file_server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server_env(file_server, monkeypatch)
    monkeypatch.setenv("FAILMAP_REMOTE_MAX_CONNECTIONS", "2")
    root, url = fresh_folder(file_server)
    for i in range(30):
        write(root, f"d/{i:02d}", bytes([i]) * (1000 + i))
    store = open_store(url)
    got = dict(store.get_many([f"d/{i:02d}" for i in range(30)] + ["d/missing"], max_workers=8))
    assert isinstance(got.pop("d/missing"), FileNotFoundError)
    assert got == {f"d/{i:02d}": bytes([i]) * (1000 + i) for i in range(30)}
    assert len(store._idle) <= 2
