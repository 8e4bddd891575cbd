"""Compares what meshflow committed to Kafka with its Parquet output of the same run.

usage: kafka_check.py BROKER OUT_DIR TOPIC_PREFIX PROGRESS_PREFIX TABLE:VERSION...

Kafka is read twice by kafka_read.py: with the control-marker reader (the
read_committed rule applied from the log itself) and with librdkafka's
read_committed. Parquet is read with pyarrow. Both are independent of meshflow.
Prints one JSON object per table with counts, duplicates and whether the committed
records equal the Parquet rows, plus the progress records' accounting.
"""
import collections
import json
import os
import sys

import pyarrow as pa
import pyarrow.dataset as ds

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_read  # noqa: E402


def parquet_rows(path):
    table = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_string(col.type):
            cols[name] = col.to_pylist()
    return [dict(zip(cols, vals)) for vals in zip(*cols.values())]


def project(row, keys):
    return tuple(row.get(k) for k in keys)


def main():
    broker, out, prefix, progress_prefix = sys.argv[1:5]
    versions = dict((t.split(':')[0], int(t.split(':')[1])) for t in sys.argv[5:])
    tables = list(versions)
    result = {}
    topics = [prefix + t for t in tables]
    progress_topics = [f"{progress_prefix}.{t}" for t in tables]
    marked = {t: kafka_read.read_markers(broker, t) for t in topics + progress_topics}
    lib = {t: kafka_read.read_committed(broker, t) for t in topics}
    progress = [r[3] for t in progress_topics for r in marked[t]["records"]]
    progress_stats = collections.Counter()
    for t in progress_topics:
        stats = dict(marked[t]["stats"])
        # A maximum over partitions, not a count: it does not add up over topics.
        most = max(progress_stats.pop("producers_per_partition", 0), stats.pop("producers_per_partition"))
        progress_stats.update(stats)
        progress_stats["producers_per_partition"] = most
    per_writer = collections.Counter((p["writer"], p["window"]) for p in progress)
    result["progress"] = {
        "records": len(progress),
        "duplicated_windows": sum(1 for n in per_writer.values() if n > 1),
        "stats": dict(progress_stats),
    }
    for table, topic in zip(tables, topics):
        records = marked[topic]["records"]
        values = [r[3] for r in records]
        rows = parquet_rows(os.path.join(out, table))
        keys = sorted(k for k in rows[0] if values and k in values[0]) if rows else []
        kafka_set = collections.Counter(project(v, keys) for v in values)
        parquet_set = collections.Counter(project(r, keys) for r in rows)
        bad_tags = sum(1 for v in values if v.get("_table") != table or v.get("_version") != versions[table])
        node_key = "node" if "node" in (values[0] if values else {}) else "src_node"
        bad_keys = sum(1 for r in records if r[2] != str(r[3].get(node_key)))
        windows = collections.Counter()
        for p in progress:
            if p["table"] == table:
                windows[(p["worker"], p["window"])] += p["rows"]
        result[table] = {
            "kafka": len(values),
            "librdkafka_read_committed": len(lib[topic]["records"]),
            "parquet": len(rows),
            "compared_columns": keys,
            "missing_from_kafka": sum((parquet_set - kafka_set).values()),
            "extra_in_kafka": sum((kafka_set - parquet_set).values()),
            "bad_tags": bad_tags,
            "bad_keys": bad_keys,
            "progress_rows": sum(windows.values()),
            "stats": marked[topic]["stats"],
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
