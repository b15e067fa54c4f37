"""Trace records from the ring buffer: bytes -> decoded records -> DTrace text.

The ring buffer is read through our own mmap of the BPF map (RingReader), a batch at a
time with no Python callback per record; a batch is decoded column-wise with numpy (one
structured dtype per clause layout) and then handed on in the kernel's commit order.

The kernel writes only data; each record starts with the clause's EPID, and the layout
codegen produced for that clause says how to read the rest and which actions (printf,
trace, exit, the default action) turn the values into output.
"""

from __future__ import annotations

import mmap
import select
import struct
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from dtrace_nb.codegen.layout import ERROR_EPID, REC_HEADER, RecordLayout
from dtrace_nb.probes import Probe
from dtrace_nb.runtime.maps import RingBufferMap

_HEADER = struct.Struct("<IIIIQ")
_ERROR = struct.Struct("<QQQQ")


@dataclass
class Record:
    epid: int
    cpu: int
    probe: Probe
    values: list
    spec: int = 0
    mask: int = -1  # bit i set: action i ran


@dataclass
class ErrorRecord:
    """A run-time fault in a clause (see codegen/fault.h)."""

    cpu: int
    probe: Probe
    epid: int
    fault: int
    addr: int
    action: int


class RecordDecoder:
    def __init__(self, layouts: dict[int, RecordLayout], probes: list[Probe]):
        self.by_epid = {r.epid: r for r in layouts.values()}
        self.probes = probes
        self._structs = {r.epid: self._struct(r) for r in layouts.values()}
        # tracemem() buffers stay bytes; other buffers are NUL-terminated strings
        self._raw = {r.epid: {a.fields[0] for a in r.actions if a.kind == "tracemem"}
                     for r in layouts.values()}
        self._dtypes: dict[int, np.dtype] = {}

    @staticmethod
    def _struct(r: RecordLayout) -> struct.Struct:
        fmt = "<" + "".join(f"{f.size}s" if f.is_string else ("q" if f.signed else "Q")
                            for f in r.fields)
        return struct.Struct(fmt)

    def decode(self, data: bytes):
        if len(data) < REC_HEADER:
            return None
        epid, cpu, pidx, spec, mask = _HEADER.unpack_from(data)
        if pidx >= len(self.probes):
            return None
        if epid == ERROR_EPID:
            fepid, fault, addr, action = _ERROR.unpack_from(data, REC_HEADER)
            return ErrorRecord(cpu, self.probes[pidx], fepid, fault, addr, action)
        layout = self.by_epid.get(epid)
        if layout is None:
            return None
        raw = self._structs[epid].unpack_from(data, REC_HEADER)
        keep = self._raw[epid]
        values = [v if (i in keep or not isinstance(v, bytes))
                  else v.split(b"\0", 1)[0].decode(errors="replace")
                  for i, v in enumerate(raw)]
        return Record(epid, cpu, self.probes[pidx], values, spec, mask)


    # -- bulk decoding -------------------------------------------------------------------

    def dtype(self, epid: int) -> Optional[np.dtype]:
        """The numpy structured dtype of a record of `epid` (header fields, then f0, f1...
        at the layout's offsets; strings and tracemem buffers as raw bytes)."""
        dt = self._dtypes.get(epid)
        if dt is None and (epid == ERROR_EPID or epid in self.by_epid):
            names = ["epid", "cpu", "pidx", "spec", "mask"]
            formats = ["<u4", "<u4", "<u4", "<u4", "<u8"]
            offsets = [0, 4, 8, 12, 16]
            if epid == ERROR_EPID:
                names += ["fepid", "fault", "addr", "action"]
                formats += ["<u8"] * 4
                offsets += [24, 32, 40, 48]
                size = REC_HEADER + _ERROR.size
            else:
                layout = self.by_epid[epid]
                for f in layout.fields:
                    names.append(f.name)
                    formats.append(f"V{f.size}" if f.is_string else ("<i8" if f.signed else "<u8"))
                    offsets.append(f.offset)
                size = layout.size
            dt = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                           "itemsize": size})
            self._dtypes[epid] = dt
        return dt

    def decode_batch(self, buf: np.ndarray, offsets: np.ndarray, lengths: np.ndarray):
        """Decode many records at once. `buf` holds the raw bytes (8-byte aligned), record i
        starts at offsets[i] and is lengths[i] bytes long. Yields (epid, seq, arr): the
        positions in the batch (ascending) of the valid records of one clause and their
        decoded rows as a structured array. Records that do not fit their clause's layout,
        have an unknown epid or probe index are left out (as decode() returns None)."""
        if not len(offsets):
            return
        words = buf.view("<u8")
        nprobes = len(self.probes)
        # one size (one clause) is the usual batch: spare np.unique's hashing then
        one_size = lengths.min() == lengths.max()
        for length in ([int(lengths[0])] if one_size else np.unique(lengths).tolist()):
            if length < REC_HEADER or length % 8:
                continue
            seq = np.arange(len(lengths)) if one_size else np.flatnonzero(lengths == length)
            starts = offsets[seq] // 8
            if len(seq) > 1 and np.all(np.diff(starts) == starts[1] - starts[0]) \
                    and starts[1] > starts[0]:
                # evenly spaced (the usual case: one clause): a strided view, one copy
                step = int(starts[1] - starts[0])
                rows = np.lib.stride_tricks.as_strided(
                    words[int(starts[0]):], shape=(len(seq), length // 8),
                    strides=(step * 8, 8)).copy()
            else:
                rows = words[starts[:, None] + np.arange(length // 8)]
            rows = rows.reshape(len(seq), length // 8)
            epids = (rows[:, 0] & 0xFFFFFFFF).astype(np.uint32)
            pidx = rows[:, 1] & 0xFFFFFFFF
            uniq = [int(epids[0])] if epids.min() == epids.max() else np.unique(epids).tolist()
            for epid in uniq:
                dt = self.dtype(epid)
                if dt is None or dt.itemsize != length:
                    continue
                sel = (epids == epid) & (pidx < nprobes)
                if sel.all():
                    yield epid, seq, rows.view(dt).reshape(len(seq))
                elif sel.any():
                    yield epid, seq[sel], np.ascontiguousarray(rows[sel]).view(dt).reshape(
                        int(sel.sum()))

    def column(self, epid: int, arr: np.ndarray, i: int) -> list:
        """Field i of decoded rows as the values a Record holds: ints, strings up to
        their NUL, tracemem() buffers as bytes."""
        f = self.by_epid[epid].fields[i]
        col = arr[f.name].tolist()
        if f.is_string and i not in self._raw[epid]:
            col = [v.split(b"\0", 1)[0].decode(errors="replace") for v in col]
        return col

    def to_records(self, epid: int, arr: np.ndarray) -> list:
        """Row objects (Record / ErrorRecord) of decoded rows, for the text path."""
        probes = self.probes
        cpus = arr["cpu"].tolist()
        pidxs = arr["pidx"].tolist()
        if epid == ERROR_EPID:
            return [ErrorRecord(c, probes[p], e, f, a, ac) for c, p, e, f, a, ac in
                    zip(cpus, pidxs, arr["fepid"].tolist(), arr["fault"].tolist(),
                        arr["addr"].tolist(), arr["action"].tolist())]
        cols = [self.column(epid, arr, i) for i in range(len(self.by_epid[epid].fields))]
        values = [list(v) for v in zip(*cols)] if cols else [[] for _ in cpus]
        return [Record(epid, c, probes[p], v, s, m) for c, p, v, s, m in
                zip(cpus, pidxs, values, arr["spec"].tolist(), arr["mask"].tolist())]


BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8


class RingReader:
    """A BPF ring buffer map read directly through mmap, as libbpf's ring_buffer does
    (kernel/bpf/ringbuf.c), but a whole batch at a time and without a callback per record.

    Mappings: page 0 is the consumer page (consumer_pos, ours to write); from page 1 the
    producer page (producer_pos) and then the data area, mapped twice in a row so a record
    that wraps around the end reads as one piece. Each record: u32 length with the BUSY
    (being written) and DISCARD bits, u32 page offset, then the data; records start
    8-byte aligned. We may read [consumer_pos, producer_pos) up to the first BUSY record,
    and the kernel reuses the space once consumer_pos passes it. Plain loads and stores
    through the mapping: enough on x86 (TSO), where this project runs; libbpf uses
    acquire/release for weaker memory models.
    """

    def __init__(self, fd: int, data_size: int):
        self.page = mmap.PAGESIZE
        self.size = data_size
        self.mask = data_size - 1
        self._cons_mm = mmap.mmap(fd, self.page, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod_mm = mmap.mmap(fd, self.page + 2 * data_size, mmap.MAP_SHARED,
                                  mmap.PROT_READ, offset=self.page)
        self._cons = memoryview(self._cons_mm).cast("Q")
        self._prod = memoryview(self._prod_mm).cast("Q")
        self._hdr = memoryview(self._prod_mm)[self.page:].cast("I")
        self._data = np.frombuffer(self._prod_mm, dtype=np.uint8, offset=self.page)
        self._words = self._data.view("<u4")
        self._ep = select.epoll()
        self._ep.register(fd, select.EPOLLIN)
        self.pos = self._cons[0]
        self._skip = 0

    def available(self) -> bool:
        return self._prod[0] > self.pos

    def wait(self, timeout_ms: int) -> None:
        """Sleep until the kernel signals data (it wakes a consumer that has caught up)."""
        if not self.available():
            self._ep.poll(max(0.0, timeout_ms / 1000))

    def read(self):
        """Copy out every record committed so far and release its space to the kernel.
        Returns (buf, offsets, lengths): the bytes (8-aligned), and where each record that
        was not discarded starts in them and how long it is; None if there was nothing."""
        start = pos = self.pos
        prod = self._prod[0]
        if pos >= prod:
            return None
        hdr, words, mask = self._hdr, self._words, self.mask
        offs: list[int] = []
        lens: list[int] = []
        runs = []  # (first offset, count, stride, length) of evenly spaced records
        while pos < prod:
            h = hdr[(pos & mask) >> 2]
            if h & BPF_RINGBUF_BUSY_BIT:
                break
            length = h & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)
            stride = (length + BPF_RINGBUF_HDR_SZ + 7) & ~7
            if not h & BPF_RINGBUF_DISCARD_BIT:
                # how many of the next records carry exactly this header? (one numpy look
                # instead of a Python step per record)
                n = (prod - pos) // stride
                if n > 8 and self._skip <= 0:
                    first = (pos & mask) >> 2
                    col = words[first:first + n * (stride >> 2):stride >> 2]
                    bad = np.flatnonzero(col != h)
                    n = int(bad[0]) if len(bad) else n
                    if n == 1:
                        self._skip = 32  # sizes alternate: walk the next ones one by one
                else:
                    n = 1
                    self._skip -= 1
                if n > 1:
                    runs.append((len(offs), pos - start + BPF_RINGBUF_HDR_SZ, n, stride,
                                 length))
                    offs.append(-1)
                    lens.append(-1)
                    pos += n * stride
                    continue
                offs.append(pos - start + BPF_RINGBUF_HDR_SZ)
                lens.append(length)
            pos += stride
        if pos == start:
            return None
        total = pos - start
        buf = np.empty(total + 8, dtype=np.uint8)  # + 8: room to align
        shift = (-buf.ctypes.data) % 8
        buf = buf[shift:shift + total]
        first = start & mask
        buf[:] = self._data[first:first + total]
        self.pos = pos
        self._cons[0] = pos  # the kernel may now reuse the space
        if runs:
            parts_o, parts_l, last = [], [], 0
            for idx, off0, n, stride, length in runs:
                parts_o.append(np.asarray(offs[last:idx], dtype=np.int64))
                parts_l.append(np.asarray(lens[last:idx], dtype=np.int64))
                parts_o.append(off0 + stride * np.arange(n, dtype=np.int64))
                parts_l.append(np.full(n, length, dtype=np.int64))
                last = idx + 1
            parts_o.append(np.asarray(offs[last:], dtype=np.int64))
            parts_l.append(np.asarray(lens[last:], dtype=np.int64))
            offsets, lengths = np.concatenate(parts_o), np.concatenate(parts_l)
        else:
            offsets = np.asarray(offs, dtype=np.int64)
            lengths = np.asarray(lens, dtype=np.int64)
        return buf, offsets, lengths

    def close(self) -> None:
        self._ep.close()
        self._data = self._words = None
        for view in (self._cons, self._prod, self._hdr):
            view.release()
        for mm in (self._cons_mm, self._prod_mm):
            try:
                mm.close()
            except BufferError:
                pass  # a view still exported: unmapped (and the map fd closed) when collected


class RingConsumer:
    """Pulls records out of the program's ring buffer a batch at a time, decodes each
    batch column-wise, and hands the records on in the order the kernel committed them.

    `columnar(epid)` says which clauses' records are kept as columns (`on_columns(epid,
    rows)` gets their decoded rows, in batch order) instead of going one by one to
    `on_record`; speculative rows (spec != 0) and ERROR records always go to on_record.

    `text_batch(epid)` may give a clause a formatter of many rows at once (rows -> their
    text, one string a row, or None when it cannot): those rows then become text without
    a Record each, and each run of them, in commit order between the records that still
    go to on_record, reaches `on_text(text, count)` as one string.
    """

    def __init__(self, ring: RingBufferMap, decoder: RecordDecoder,
                 on_record: Callable[[Record], None],
                 columnar: Callable[[int], bool] = lambda _e: False,
                 on_columns: Optional[Callable[[int, np.ndarray], None]] = None,
                 text_batch: Optional[Callable[[int], Optional[Callable]]] = None,
                 on_text: Optional[Callable[[str, int], None]] = None):
        self.decoder = decoder
        self.on_record = on_record
        self.columnar = columnar
        self.on_columns = on_columns
        self.text_batch, self.on_text = text_batch, on_text
        if self.text_batch is None or self.on_text is None:
            self.text_batch = None
        self.failure: Optional[BaseException] = None
        self.reader = RingReader(ring.fd, ring.data_size)

    def poll(self, timeout_ms: int) -> None:
        """Wait up to timeout_ms for records, then consume what has arrived."""
        if not self._consume_batch():
            self.reader.wait(timeout_ms)
            self._consume_batch()
        self._raise()

    def drain(self) -> None:
        while self._consume_batch():
            pass
        self._raise()

    def close(self) -> None:
        self.reader.close()

    def _consume_batch(self) -> bool:
        got = self.reader.read()
        if got is None:
            return False
        buf, offsets, lengths = got
        parts = []  # (seq array, list of texts or of Records)
        texts = 0  # how many of the parts are texts
        for epid, seq, rows in self.decoder.decode_batch(buf, offsets, lengths):
            if epid == ERROR_EPID:
                parts.append((seq, self.decoder.to_records(epid, rows)))
                continue
            if self.on_columns is not None and self.columnar(epid):
                spec = rows["spec"] != 0
                if not spec.any():
                    self.on_columns(epid, rows)
                    continue
                self.on_columns(epid, rows[~spec])
                seq, rows = seq[spec], rows[spec]
            elif self.text_batch is not None:
                before = len(parts)
                seq, rows = self._format(epid, seq, rows, parts)
                texts += len(parts) - before
                if not len(seq):
                    continue
            parts.append((seq, self.decoder.to_records(epid, rows)))
        if len(parts) == 1:
            items = parts[0][1]
        elif parts:
            seqs = np.concatenate([s for s, _ in parts])
            flat = [r for _, rs in parts for r in rs]
            items = [flat[i] for i in np.argsort(seqs, kind="stable").tolist()]
        else:
            items = []
        self._hand_on(items, texts == len(parts))
        return True

    def _format(self, epid: int, seq: np.ndarray, rows: np.ndarray, parts: list):
        """Format the rows of a clause that has a batch formatter (into `parts`); returns
        the rows left for on_record (speculative ones, or all if it could not)."""
        fmt = self.text_batch(epid)
        if fmt is None:
            return seq, rows
        spec = rows["spec"] != 0
        plain = ~spec if spec.any() else None
        texts = fmt(rows if plain is None else rows[plain])
        if texts is None:
            return seq, rows
        if plain is None:
            parts.append((seq, texts))
            return seq[:0], rows[:0]
        parts.append((seq[plain], texts))
        return seq[spec], rows[spec]

    def _hand_on(self, items: list, texts_only: bool) -> None:
        """Texts and Records in commit order: each run of texts to on_text as one string,
        each Record to on_record."""
        if texts_only:
            if items:
                self._deliver(self.on_text, "".join(items), len(items))
            return
        run: list[str] = []
        for item in items:
            if type(item) is str:
                run.append(item)
                continue
            if run:
                self._deliver(self.on_text, "".join(run), len(run))
                run = []
            self._deliver(self.on_record, item)
        if run:
            self._deliver(self.on_text, "".join(run), len(run))

    def _deliver(self, fn, *args) -> None:
        # as before: a failing record must not lose the rest of the batch
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised by poll()/drain()
            if self.failure is None:
                self.failure = exc

    def _raise(self) -> None:
        if self.failure is not None:
            exc, self.failure = self.failure, None
            raise exc


def column_names(layout: RecordLayout) -> list[str]:
    """A column name for each field of a clause's record: 'trace' (then 'trace_2'...),
    'printf_1'... for the arguments of printf (the second printf: 'printf2_1'...),
    'tracemem' / 'tracemem_len', 'exit' and so on."""
    names = [f.name for f in layout.fields]
    seen: dict[str, int] = {}
    for a in layout.actions:
        seen[a.kind] = seen.get(a.kind, 0) + 1
        nth = seen[a.kind]
        base = a.kind if nth == 1 else f"{a.kind}{nth}"
        if a.kind in ("printf", "system"):
            for k, i in enumerate(a.fields, 1):
                names[i] = f"{base}_{k}"
        elif a.kind == "tracemem":
            names[a.fields[0]] = base if nth == 1 else f"tracemem_{nth}"
            if len(a.fields) > 1:
                names[a.fields[1]] = names[a.fields[0]] + "_len"
        else:
            for k, i in enumerate(a.fields):
                names[i] = (a.kind if nth == 1 else f"{a.kind}_{nth}") + ("" if k == 0 else f"_{k}")
    return names


def records_frame(decoder: RecordDecoder, epid: int, arrays: list):
    """A DataFrame of a clause's decoded records (in arrival order): cpu, probe, then one
    column per recorded value (integers in their D type's width, strings as str,
    tracemem() buffers as bytes). Built from the numpy columns, no per-record formatting
    except for string values."""
    import pandas as pd

    from dtrace_nb.lang.types import IntType

    layout = decoder.by_epid[epid]
    dt = decoder.dtype(epid)
    arr = np.concatenate(arrays) if arrays else np.zeros(0, dtype=dt)
    descs = np.array([p.description for p in decoder.probes] or [""], dtype=object)
    cols: dict = {"cpu": arr["cpu"].astype(np.int64),
                  "probe": pd.Categorical(descs[arr["pidx"].astype(np.int64)])}
    keep = decoder._raw[epid]
    for i, (f, name) in enumerate(zip(layout.fields, column_names(layout))):
        col = arr[f.name]
        if f.is_string:
            values = col.tolist()
            if i not in keep:
                values = [v.split(b"\0", 1)[0].decode(errors="replace") for v in values]
            cols[name] = pd.Series(values, dtype=object)
        elif isinstance(f.dtype, IntType) and f.dtype.size in (1, 2, 4, 8):
            cols[name] = col.astype(f"{'i' if f.dtype.signed else 'u'}{f.dtype.size}")
        else:
            cols[name] = col
    return pd.DataFrame(cols)
