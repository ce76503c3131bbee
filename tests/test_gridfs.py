"""helogale.gridfs against one member (gRPC), and against pymongo's own gridfs over the wire."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from collections.abc import Iterator
from typing import Any

import gridfs as pymongo_gridfs
import pymongo
import pytest

import helogale
from helogale.gridfs import (
    CorruptGridFile,
    FileExists,
    GridFS,
    GridFSBucket,
    NoFile,
)
from node.local_cluster import LocalCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    running = LocalCluster(members=1, wire=True).start(180)  # a loaded machine is slow
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[helogale.MongoClient]:
    with helogale.MongoClient(cluster.uri, serverSelectionTimeoutMS=20000) as running:
        yield running


@pytest.fixture(scope="module")
def pyclient(cluster: LocalCluster) -> Iterator[pymongo.MongoClient]:
    assert cluster.wire_uri is not None
    running: pymongo.MongoClient = pymongo.MongoClient(cluster.wire_uri,
                                                      serverSelectionTimeoutMS=20000)
    yield running
    running.close()


@pytest.fixture
def db(client: helogale.MongoClient, request: pytest.FixtureRequest) -> Any:
    name = "g_" + request.node.name.replace("[", "_").replace("]", "")[:40]
    client.drop_database(name)
    return client[name]


class RandomSource(io.RawIOBase):
    """``size`` pseudo-random bytes made as they are read (never whole in memory)."""

    def __init__(self, size: int, seed: int = 1) -> None:
        self.left = size
        self.counter = seed
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.counter += 1
        data = (self.counter.to_bytes(8, "big") * (n // 8 + 1))[:n]
        self.left -= len(data)
        self.digest.update(data)
        return data


def test_put_get_with_fields_and_lookups(db: Any) -> None:
    fs = GridFS(db)
    fid = fs.put(b"hello world", filename="a.txt", contentType="text/plain",
                 metadata={"owner": "ann"}, custom=7)
    out = fs.get(fid)
    assert out.read() == b"hello world"
    assert (out.filename, out.content_type, out.metadata, out.length, out.chunk_size) == (
        "a.txt", "text/plain", {"owner": "ann"}, 11, 255 * 1024)
    assert out.custom == 7 and out.upload_date is not None
    doc = db["fs.files"].find_one({"_id": fid})
    assert set(doc) == {"_id", "filename", "contentType", "metadata", "custom", "chunkSize",
                        "length", "uploadDate"}  # no md5
    assert fs.exists(fid) and fs.exists(filename="a.txt") and not fs.exists(filename="b")
    fs.put(b"v2", filename="a.txt")
    assert fs.get_last_version("a.txt").read() == b"v2"
    assert fs.get_version("a.txt", 0).read() == b"hello world"
    assert fs.list() == ["a.txt"]
    assert sorted(g.read() for g in fs.find({"filename": "a.txt"})) == [b"hello world", b"v2"]
    assert fs.find_one(fid).read() == b"hello world"
    with pytest.raises(FileExists):
        fs.put(b"x", _id=fid)
    fs.delete(fid)
    with pytest.raises(NoFile):
        fs.get(fid)
    assert db["fs.chunks"].count_documents({"files_id": fid}) == 0
    with pytest.raises(NoFile):
        fs.get_last_version("nothing")
    (files_ix, chunks_ix) = ({ix["name"]: ix for ix in db[c].list_indexes()}
                             for c in ("fs.files", "fs.chunks"))
    assert "filename_1_uploadDate_1" in files_ix
    assert chunks_ix["files_id_1_n_1"].get("unique") is True


@pytest.mark.parametrize("size", [0, 1, 99, 100, 101, 300, 1000])
def test_chunk_boundaries(db: Any, size: int) -> None:
    data = os.urandom(size)
    fid = GridFS(db).put(data, chunk_size=100)
    assert GridFS(db).get(fid).read() == data
    chunks = list(db["fs.chunks"].find({"files_id": fid}, sort=[("n", 1)]))
    assert [c["n"] for c in chunks] == list(range((size + 99) // 100))
    assert all(len(c["data"]) == 100 for c in chunks[:-1])


def test_seek_read_readline_and_iteration(db: Any) -> None:
    data = b"".join(f"line {i}\n".encode() for i in range(200))
    fid = GridFS(db).put(data, chunk_size=64)
    out = GridFS(db).get(fid)
    assert out.readline() == b"line 0\n"
    out.seek(100)
    assert out.tell() == 100 and out.read(50) == data[100:150]
    out.seek(-10, io.SEEK_END)
    assert out.read() == data[-10:] and out.read() == b""
    out.seek(5, io.SEEK_SET)
    assert out.readchunk() == data[5:64]
    out.seek(0)
    assert b"".join(out) == data
    with pytest.raises(OSError):
        out.seek(-1)


def test_corrupt_files_are_reported(db: Any) -> None:
    fs = GridFS(db)
    chunks = db["fs.chunks"]
    missing = fs.put(os.urandom(250), chunk_size=100)
    chunks.delete_one({"files_id": missing, "n": 1})
    with pytest.raises(CorruptGridFile):
        fs.get(missing).read()
    short = fs.put(os.urandom(250), chunk_size=100)
    chunks.update_one({"files_id": short, "n": 0}, {"$set": {"data": b"xx"}})
    with pytest.raises(CorruptGridFile):
        fs.get(short).read()
    extra = fs.put(os.urandom(150), chunk_size=100)
    chunks.insert_one({"files_id": extra, "n": 2, "data": b"zz"})
    with pytest.raises(CorruptGridFile):
        fs.get(extra).read()


def test_bucket_api(db: Any) -> None:
    bucket = GridFSBucket(db, bucket_name="images", chunk_size_bytes=1000)
    first = bucket.upload_from_stream("cat.png", io.BytesIO(b"a" * 2500), metadata={"v": 1})
    second = bucket.upload_from_stream("cat.png", io.BytesIO(b"b" * 10))
    sink = io.BytesIO()
    bucket.download_to_stream(first, sink)
    assert sink.getvalue() == b"a" * 2500
    assert bucket.open_download_stream_by_name("cat.png").read() == b"b" * 10
    assert bucket.open_download_stream_by_name("cat.png", revision=0).read() == b"a" * 2500
    assert [g.metadata for g in bucket.find({"metadata.v": 1})] == [{"v": 1}]
    bucket.rename(second, "dog.png")
    sink = io.BytesIO()
    bucket.download_to_stream_by_name("dog.png", sink)
    assert sink.getvalue() == b"b" * 10
    with pytest.raises(NoFile):
        bucket.rename("missing", "x")
    with bucket.open_upload_stream("stream.bin") as grid_in:
        grid_in.write(b"12345")
        grid_in.writelines([b"6", b"7"])
    assert bucket.open_download_stream(grid_in._id).read() == b"1234567"
    # a failed with-block leaves the chunks sent so far and no file (as pymongo)
    with pytest.raises(RuntimeError), \
            GridFSBucket(db, "images").open_upload_stream("broken") as broken:
        broken.write(b"x" * 3 * 1024 * 1024)  # one 2 MiB batch of 255 KiB chunks is sent
        raise RuntimeError("boom")
    assert db["images.files"].find_one({"_id": broken._id}) is None
    assert db["images.chunks"].count_documents({"files_id": broken._id}) == 9
    bucket.delete(first)
    with pytest.raises(NoFile):
        bucket.open_download_stream(first)
    with pytest.raises(NoFile):
        bucket.delete(first)
    bucket.drop()
    assert db["images.files"].count_documents({}) == 0


def test_pymongo_writes_helogale_reads_and_back(db: Any, pyclient: pymongo.MongoClient) -> None:
    pydb = pyclient[db.name]
    data = os.urandom(3 * 255 * 1024 + 17)
    pid = pymongo_gridfs.GridFSBucket(pydb).upload_from_stream(
        "from-pymongo", io.BytesIO(data), metadata={"by": "pymongo"})
    out = GridFSBucket(db).open_download_stream(pid)
    assert out.read() == data and out.metadata == {"by": "pymongo"}
    hid = GridFS(db).put(data[::-1], filename="from-helogale", contentType="image/png")
    pyout = pymongo_gridfs.GridFS(pydb).get(hid)
    assert pyout.read() == data[::-1]
    assert (pyout.filename, pyout._file["contentType"], pyout.length) == (
        "from-helogale", "image/png", len(data))
    assert pymongo_gridfs.GridFS(pydb).get_last_version("from-pymongo").read() == data
    pymongo_gridfs.GridFSBucket(pydb).delete(hid)
    assert not GridFS(db).exists(hid)


def _upload_peak(db: Any, size: int) -> int:
    tracemalloc.start()
    try:
        source = RandomSource(size)
        fid = GridFSBucket(db).upload_from_stream(f"big-{size}", source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        for chunk in GridFSBucket(db).open_download_stream(fid):
            digest.update(chunk)
        _, down_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.digest() == source.digest.digest()
    return max(peak, down_peak)


def test_memory_does_not_grow_with_file_size(db: Any) -> None:
    small = _upload_peak(db, 2 * 1024 * 1024)
    large = _upload_peak(db, 32 * 1024 * 1024)
    print(f"client peak: 2 MiB file {small / 2**20:.1f} MiB, 32 MiB file {large / 2**20:.1f} MiB")
    assert large < 12 * 1024 * 1024, large
    assert large < small * 2 + 4 * 1024 * 1024, (small, large)


# --- docs/gridfs.md and docs/capped.md: their python blocks run against this member ----------

SHOWN_URI = "helogale://localhost:27027/?replicaSet=rs0"


def _run_doc(name: str, uri: str) -> None:
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parent.parent / "docs" / name
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.DOTALL)
    assert blocks
    namespace: dict[str, object] = {"__name__": name}
    for block in blocks:
        exec(compile(block.replace(SHOWN_URI, uri), str(doc), "exec"), namespace)


def test_gridfs_doc_runs(cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
    _run_doc("gridfs.md", cluster.uri)
    out = capsys.readouterr().out
    assert "image/png 300008" in out and "b'second version'" in out and "gone" in out
    assert "[b'line 1', b'line 2']" in out and "b'line 2\\n'" in out


def test_capped_doc_runs(cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
    _run_doc("capped.md", cluster.uri)
    out = capsys.readouterr().out
    assert "1000 200 1199" in out and "True 65536 1000" in out
    assert "[2000, 2001, 2002, 2003, 2004]" in out
