"""Client for certmix's batch server (``shardtool serve``; Go package sampler/serve).

The server streams exact-ratio mixed batches (e.g. 30% real, 70% generated
images per batch, on every rank) over a Unix socket or loopback TCP. This
module speaks its wire protocol (version 1) with the standard library, numpy
and torch only.

A training script changes three lines::

    ds = CertmixDataset("unix:/run/certmix.sock", rank=rank)      # 1. the dataset
    loader = DataLoader(ds, batch_size=None, num_workers=0)       # 2. the loader
    ckpt["data"] = ds.state_dict()  # 3. in the checkpoint; on resume: ds.load_state_dict(ckpt["data"])

``for images, labels in loader`` then yields ready batches: uint8 NHWC
images (or float32 NCHW when the server normalises) and int64 labels. The
stream is endless: count steps yourself. ``batch_size=None`` because the
server makes the batches; ``num_workers=0`` because the server already
prefetches and the resume state must live in the training process.
``state_dict()`` is the sampler state after the last batch yielded, so
resuming from a checkpoint gives exactly the batches an uninterrupted run
would have got (the same rank must resume it).

Lower level::

    conn = connect("127.0.0.1:7070", rank=0)
    print(conn.info)                 # the server's handshake response
    b = conn.read_batch()            # Batch(step, epoch, images, labels, ids, sources, state)
    conn.close()

Protocol (see sampler/serve/wire.go): the client sends one JSON line
``{"magic": "certmix", "version": 1, "rank": r, "state": s}``, the server
answers one JSON line (``{"ok": true, ...}`` or ``{"ok": false, "error":
...}``), then sends frames: a 64-byte little-endian header and a body of
images, labels (int64), ids (int64), sources (uint8) and the sampler state
(JSON) after that batch.
"""

import collections
import copy
import json
import operator
import socket
import struct

import numpy as np

__all__ = ["CertmixError", "Batch", "Connection", "connect", "CertmixDataset", "VERSION"]

VERSION = 1
HEADER_SIZE = 64
MAX_HANDSHAKE = 64 << 10
MAX_PAYLOAD = 4 << 30
MAX_ERROR_MESSAGE = 1 << 20

KIND_BATCH = 0
KIND_ERROR = 1
DTYPE_UINT8 = 1
DTYPE_FLOAT32 = 2
LAYOUT_NHWC = 1
LAYOUT_NCHW = 2

_FRAME_MAGIC = b"CMXF"
# magic, version, kind, dtype, batch, height, width, channels, layout,
# reserved, step, epoch, payload_bytes, state_bytes, 12 reserved bytes.
_HEADER = struct.Struct("<4sHBBIHHHHIqqQI12x")
assert _HEADER.size == HEADER_SIZE
_DTYPES = {DTYPE_UINT8: np.dtype(np.uint8), DTYPE_FLOAT32: np.dtype("<f4")}
_I64 = np.dtype("<i8")


class CertmixError(Exception):
    """A refused handshake, an error frame from the server, a malformed
    frame, or a connection closed before a frame was complete."""


Batch = collections.namedtuple("Batch", "step epoch images labels ids sources state")
Batch.__doc__ = """One batch as served.

step, epoch: ints. images: numpy uint8 (B, H, W, C) or float32 (B, C, H, W).
labels, ids: int64 (B,). sources: uint8 (B,), the index of each image's source
(0 = real). state: dict, the sampler state after this batch (resume from it).
"""


def _parse_address(address):
    """Returns (family, sockaddr) for "unix:/path" or "host:port"."""
    if not isinstance(address, str) or not address:
        raise ValueError("certmix: address %r: want 'unix:/path/to.sock' or 'host:port'" % (address,))
    if address.startswith("unix:"):
        path = address[len("unix:"):]
        if not path:
            raise ValueError("certmix: address %r has no socket path" % address)
        return socket.AF_UNIX, path
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("certmix: address %r: want 'unix:/path/to.sock' or 'host:port'" % address)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return None, (host or "127.0.0.1", int(port))


class Connection:
    """A handshaken connection to a shardtool server; use ``connect``.

    ``info`` is the server's handshake response (batch, height, width,
    channels, dtype, layout, step, steps_per_epoch, quotas, world_size).
    Not thread-safe. Closes on ``close()`` or at the end of a ``with`` block.
    """

    def __init__(self, sock, info, pending):
        self._sock = sock
        self.info = info
        self._pending = pending  # bytes received after the handshake line
        self._header = bytearray(HEADER_SIZE)
        self._buf = bytearray(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def close(self):
        """Closes the connection; the server stops making this stream."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    @property
    def closed(self):
        return self._sock is None

    def fileno(self):
        return self._sock.fileno()

    def _read_into(self, view, what):
        """Fills view (a writable memoryview of bytes) from the socket."""
        n = len(view)
        got = 0
        if self._pending:
            k = min(n, len(self._pending))
            view[:k] = self._pending[:k]
            self._pending = self._pending[k:]
            got = k
        sock = self._sock
        if sock is None:
            raise CertmixError("certmix: connection is closed")
        recv_into = sock.recv_into
        while got < n:
            k = recv_into(view[got:], n - got)
            if k == 0:
                raise CertmixError("certmix: server closed the connection after %d of %d bytes of %s" % (got, n, what))
            got += k

    def read_batch(self, copy=False):
        """Reads the next frame and returns a ``Batch``.

        The numpy arrays are views into a buffer this connection reuses:
        they stay valid until the next ``read_batch`` call (pass copy=True
        for arrays of their own). Raises CertmixError on an error frame, a
        malformed frame or a closed connection.
        """
        try:
            return self._read_batch(copy)
        except CertmixError:
            self.close()
            raise
        except BaseException:
            # A timeout or an interrupt mid-frame leaves the stream out of
            # step: this connection cannot be read on.
            self.close()
            raise

    def _read_batch(self, copy):
        hv = memoryview(self._header)
        self._read_into(hv, "a frame header")
        (magic, version, kind, dtype, batch, height, width, channels, layout,
         _reserved, step, epoch, payload, state_bytes) = _HEADER.unpack_from(self._header)
        if magic != _FRAME_MAGIC:
            raise CertmixError("certmix: frame magic %r, want %r (not a shardtool server, or the stream is out of sync)" % (magic, _FRAME_MAGIC))
        if version != VERSION:
            raise CertmixError("certmix: frame version %d, want %d" % (version, VERSION))
        if payload > MAX_PAYLOAD or state_bytes > payload:
            raise CertmixError("certmix: frame of %d payload bytes (%d of state): refused" % (payload, state_bytes))
        if kind == KIND_ERROR:
            if payload > MAX_ERROR_MESSAGE:
                raise CertmixError("certmix: server sent an error frame of %d bytes" % payload)
            msg = bytearray(payload)
            self._read_into(memoryview(msg), "an error message")
            self.close()
            raise CertmixError("shardtool server: " + msg.decode("utf-8", "replace"))
        if kind != KIND_BATCH:
            raise CertmixError("certmix: frame kind %d" % kind)
        dt = _DTYPES.get(dtype)
        if dt is None or layout not in (LAYOUT_NHWC, LAYOUT_NCHW):
            raise CertmixError("certmix: frame dtype %d, layout %d" % (dtype, layout))
        image_bytes = batch * height * width * channels * dt.itemsize
        want = image_bytes + batch * 17 + state_bytes
        if want != payload:
            raise CertmixError("certmix: frame of %d images %dx%dx%d has %d payload bytes, want %d" % (batch, height, width, channels, payload, want))

        if len(self._buf) < payload:
            self._buf = bytearray(payload)
        buf = self._buf
        self._read_into(memoryview(buf)[:payload], "a batch")

        if layout == LAYOUT_NHWC:
            shape = (batch, height, width, channels)
        else:
            shape = (batch, channels, height, width)
        off = 0
        images = np.frombuffer(buf, dt, batch * height * width * channels, off).reshape(shape)
        off += image_bytes
        labels = np.frombuffer(buf, _I64, batch, off)
        off += 8 * batch
        ids = np.frombuffer(buf, _I64, batch, off)
        off += 8 * batch
        sources = np.frombuffer(buf, np.uint8, batch, off)
        off += batch
        try:
            state = json.loads(bytes(buf[off:off + state_bytes]))
        except ValueError as e:
            raise CertmixError("certmix: batch %d carries a malformed state: %s" % (step, e))
        if copy:
            images, labels, ids, sources = images.copy(), labels.copy(), ids.copy(), sources.copy()
        return Batch(step, epoch, images, labels, ids, sources, state)

    def __iter__(self):
        while True:
            yield self.read_batch()


def connect(address, rank=0, state=None, timeout=None):
    """Connects to a shardtool server and sends the handshake.

    address: "unix:/path/to.sock" or "host:port". rank: this process's
    rank (0 <= rank < the server's world size). state: a sampler state dict
    (``Batch.state`` or ``CertmixDataset.state_dict()``) to resume after, or
    None to start at step 0. timeout: socket timeout in seconds (None:
    block). Returns a ``Connection``; raises CertmixError with the server's
    message when it refuses the handshake.
    """
    if isinstance(rank, bool):
        raise TypeError("certmix: rank must be an int, not %r" % (rank,))
    rank = operator.index(rank)  # ints and numpy integers
    family, addr = _parse_address(address)
    if family == socket.AF_UNIX:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(addr)
        except BaseException:
            sock.close()
            raise
    else:
        sock = socket.create_connection(addr, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        req = {"magic": "certmix", "version": VERSION, "rank": rank, "state": state}
        sock.sendall(json.dumps(req).encode() + b"\n")
        line, pending = _read_line(sock)
        try:
            info = json.loads(line)
        except ValueError:
            raise CertmixError("certmix: %s answered the handshake with %r, not JSON" % (address, bytes(line[:200])))
        if not isinstance(info, dict):
            raise CertmixError("certmix: %s answered the handshake with %r" % (address, info))
        if not info.get("ok"):
            raise CertmixError("shardtool server %s refused the connection: %s" % (address, info.get("error") or "no reason given"))
        if info.get("version") != VERSION:
            raise CertmixError("certmix: server speaks protocol version %r, this client %d" % (info.get("version"), VERSION))
        return Connection(sock, info, pending)
    except BaseException:
        sock.close()
        raise


def _read_line(sock):
    """Reads the handshake response line; returns it and the bytes after it."""
    buf = bytearray()
    while True:
        i = buf.find(b"\n")
        if i >= 0:
            return bytes(buf[:i]), bytes(buf[i + 1:])
        if len(buf) > MAX_HANDSHAKE:
            raise CertmixError("certmix: handshake response longer than %d bytes" % MAX_HANDSHAKE)
        chunk = sock.recv(65536)
        if not chunk:
            if buf:
                raise CertmixError("certmix: server closed the connection in the middle of its handshake response %r" % bytes(buf[:200]))
            raise CertmixError("certmix: server closed the connection without answering the handshake")
        buf += chunk


try:
    import torch
    from torch.utils.data import IterableDataset as _IterableDataset
    _TORCH_DTYPES = {"|u1": torch.uint8, "<f4": torch.float32, "<i8": torch.int64}
except ImportError:  # numpy-only use of connect/read_batch
    torch = None
    _IterableDataset = object


class CertmixDataset(_IterableDataset):
    """An endless ``torch.utils.data.IterableDataset`` of a server's batches.

    Each item is ``(images, labels)``: torch tensors of uint8 (B, H, W, C) or
    float32 (B, C, H, W), as the server makes them, and int64 (B,) labels,
    copied out of the connection's buffer (pinned when pin_memory is set and
    CUDA is available). Use it with ``DataLoader(ds, batch_size=None,
    num_workers=0)``.

    Iterating connects and continues after the last batch this dataset
    yielded (or from the state given to ``__init__``/``load_state_dict``), so
    a new iteration, or a new process that loaded ``state_dict()``, gets
    exactly the batches an uninterrupted run would have got next. ``batches``
    (optional) ends each iteration after that many batches.
    """

    def __init__(self, address, rank=0, state=None, pin_memory=False, batches=None, timeout=None):
        if torch is None:
            raise CertmixError("certmix: CertmixDataset needs torch")
        self.address = address
        self.rank = rank
        self.pin_memory = pin_memory
        self.batches = batches
        self.timeout = timeout
        self.info = None
        self._state = copy.deepcopy(state)

    def state_dict(self):
        """The sampler state after the last batch yielded (a JSON-serialisable
        dict to store in the training checkpoint), or the state to start from
        when none was yielded yet (None: step 0)."""
        return copy.deepcopy(self._state)

    def load_state_dict(self, state):
        """Sets the state the next iteration resumes after (None: step 0)."""
        if state is not None and not isinstance(state, dict):
            raise TypeError("certmix: state must be a dict from state_dict(), not %r" % type(state).__name__)
        self._state = copy.deepcopy(state)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        if info is not None:
            raise CertmixError("certmix: CertmixDataset runs in the training process: use DataLoader(ds, batch_size=None, num_workers=0) "
                               "(the server already prefetches, and the resume state must stay in this process)")
        pin = bool(self.pin_memory) and torch.cuda.is_available()
        conn = connect(self.address, self.rank, self._state, self.timeout)
        self.info = conn.info
        try:
            n = 0
            while self.batches is None or n < self.batches:
                b = conn.read_batch()
                images = _to_tensor(b.images, pin)
                labels = _to_tensor(b.labels, pin)
                self._state = b.state
                n += 1
                yield images, labels
        finally:
            conn.close()


def _to_tensor(a, pin):
    """Copies a numpy view into a new (optionally pinned) tensor."""
    if pin:
        t = torch.empty(a.shape, dtype=_TORCH_DTYPES[a.dtype.str], pin_memory=True)
        t.copy_(torch.from_numpy(a))
        return t
    return torch.from_numpy(a).clone()
