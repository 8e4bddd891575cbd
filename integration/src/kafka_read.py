"""Independent reader of what meshflow wrote to Kafka (shares no code with it).

usage: kafka_read.py BROKER MODE TOPIC...

MODE `committed`: confluent-kafka (librdkafka) with isolation.level=read_committed,
partitions assigned explicitly and read to their end.

MODE `markers`: a raw Kafka Fetch (v4) client that applies the read_committed rule
itself from the transaction control markers in the log: a transactional batch is
returned only once a COMMIT marker of its producer follows it, dropped at an ABORT
marker, and held back (reported as `open_records`) if neither follows. This is
needed against tansu 0.6, whose Fetch responses carry no aborted-transaction list,
so librdkafka's read_committed returns aborted records too.

Prints one JSON object: {topic: {"records": [[partition, offset, key, value]],
"stats": {...}}}. Values are parsed as JSON (kept as text when they are not).
"""
import json
import socket
import struct
import sys
import time

import confluent_kafka as ck
import confluent_kafka.admin


def parse(value):
    try:
        return json.loads(value)
    except ValueError:
        return (value or b"").decode(errors="replace")


def partitions(broker, topic):
    md = ck.admin.AdminClient({"bootstrap.servers": broker}).list_topics(topic, timeout=10)
    t = md.topics[topic]
    if t.error is not None:
        raise SystemExit(f"topic {topic}: {t.error}")
    return sorted(t.partitions)


def read_committed(broker, topic):
    c = ck.Consumer({
        "bootstrap.servers": broker,
        "group.id": "meshflow-verify",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
    })
    parts = partitions(broker, topic)
    # A partition is read once an end-of-partition event comes at its end offset
    # (an early event, at a lower offset, is not trusted).
    ends = {p: c.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10)[1] for p in parts}
    c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in parts])
    eof, out = set(), []
    deadline = time.time() + 120
    while len(eof) < len(parts):
        if time.time() > deadline:
            raise SystemExit(f"reading {topic} timed out")
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == ck.KafkaError._PARTITION_EOF:
                if m.offset() >= ends[m.partition()]:
                    eof.add(m.partition())
                continue
            raise SystemExit(str(m.error()))
        out.append([m.partition(), m.offset(), (m.key() or b"").decode(), parse(m.value())])
    c.close()
    return {"records": out, "stats": {}}


def recv_all(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise SystemExit("broker closed the connection")
        buf += chunk
    return buf


class Conn:
    def __init__(self, broker):
        host, port = broker.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=30)
        self.corr = 0

    def request(self, api_key, version, body):
        self.corr += 1
        client = b"meshflow-verify"
        msg = struct.pack(">hhih", api_key, version, self.corr, len(client)) + client + body
        self.s.sendall(struct.pack(">i", len(msg)) + msg)
        (n,) = struct.unpack(">i", recv_all(self.s, 4))
        data = recv_all(self.s, n)
        (corr,) = struct.unpack(">i", data[:4])
        assert corr == self.corr, "correlation id mismatch"
        return data[4:]


class Buf:
    def __init__(self, data):
        self.d, self.i = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.i)
        self.i += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def raw(self, n):
        v = self.d[self.i:self.i + n]
        self.i += n
        return v

    def string(self):
        n = self.take(">h")
        return None if n < 0 else self.raw(n).decode()

    def varint(self):
        shift = result = 0
        while True:
            b = self.d[self.i]
            self.i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
        return (result >> 1) ^ -(result & 1)

    def vbytes(self):
        n = self.varint()
        return None if n < 0 else self.raw(n)


def fetch(conn, topic, partition, offset):
    t = topic.encode()
    body = struct.pack(">iiiib", -1, 5000, 1, 32 << 20, 0)
    body += struct.pack(">ih", 1, len(t)) + t
    body += struct.pack(">iiqi", 1, partition, offset, 16 << 20)
    b = Buf(conn.request(1, 4, body))
    b.take(">i")  # throttle
    assert b.take(">i") == 1
    b.string()
    assert b.take(">i") == 1
    _p, err, hw, _lso = b.take(">ihqq")
    if err:
        raise SystemExit(f"fetch {topic}/{partition} at {offset}: error {err}")
    n = b.take(">i")
    for _ in range(max(n, 0)):
        b.take(">qq")
    size = b.take(">i")
    return hw, (b.raw(size) if size > 0 else b"")


def batches(data):
    b = Buf(data)
    while len(data) - b.i >= 61:
        start = b.i
        base, length = b.take(">qi")
        if len(data) - start < 12 + length:
            break
        _epoch, magic, _crc, attrs, last_delta = b.take(">ibIhi")
        assert magic == 2, f"record batch magic {magic}"
        assert attrs & 7 == 0, "compressed batches are not supported by this reader"
        b.take(">qq")
        pid, _pepoch, _seq, count = b.take(">qhii")
        records = []
        for _ in range(count):
            b.varint()
            b.take(">b")
            b.varint()
            delta = b.varint()
            key = b.vbytes()
            value = b.vbytes()
            for _ in range(b.varint()):
                b.vbytes()
                b.vbytes()
            records.append((base + delta, key, value))
        b.i = start + 12 + length
        yield base, last_delta, attrs, pid, records


def read_markers(broker, topic):
    conn = Conn(broker)
    out = []
    stats = {"commits": 0, "aborts": 0, "aborted_records": 0, "open_records": 0,
             "producers_per_partition": 0}
    for p in partitions(broker, topic):
        offset, pending, empty, producers = 0, {}, 0, set()
        while True:
            hw, data = fetch(conn, topic, p, offset)
            if offset >= hw:
                break
            progressed = False
            for base, last_delta, attrs, pid, records in batches(data):
                if base + last_delta < offset:
                    continue
                progressed = True
                offset = base + last_delta + 1
                if attrs & 0x20:
                    for _o, key, _v in records:
                        _ver, kind = struct.unpack(">hh", key[:4])
                        held = pending.pop(pid, [])
                        if kind == 1:
                            stats["commits"] += 1
                            out.extend(held)
                        else:
                            stats["aborts"] += 1
                            stats["aborted_records"] += len(held)
                    continue
                producers.add(pid)
                rows = [[p, o, (k or b"").decode(), parse(v)] for o, k, v in records]
                if attrs & 0x10:
                    pending.setdefault(pid, []).extend(rows)
                else:
                    out.extend(rows)
            if progressed:
                empty = 0
                continue
            # tansu's S3 storage sometimes answers with no records below the high
            # watermark: ask again, a bounded number of times.
            empty += 1
            if empty > 200:
                raise SystemExit(f"fetch {topic}/{p} at {offset} keeps returning no batch below {hw}")
            time.sleep(0.05)
        stats["open_records"] += sum(len(v) for v in pending.values())
        # The most producers (ids) that wrote data batches to one partition.
        stats["producers_per_partition"] = max(stats["producers_per_partition"], len(producers))
    return {"records": out, "stats": stats}


def main():
    broker, mode, topics = sys.argv[1], sys.argv[2], sys.argv[3:]
    read = {"committed": read_committed, "markers": read_markers}[mode]
    print(json.dumps({t: read(broker, t) for t in topics}))


if __name__ == "__main__":
    main()
