#!/usr/bin/env python3
"""Produce Payment records with Confluent's own Python serializers (confluent-kafka).

A producer not written in this project: its bytes (magic 0x00, 4-byte big-endian schema id, then
the Avro / Protobuf / JSON body) and the schemas it auto-registers are what a real Confluent client
sends, so sinkworker's decoders are checked against them, not against our own encoder.

Invocation (the packages come from `scripts/services up`, which installs them into <state>/py):

    eval "$(scripts/services env)"
    PYTHONPATH=$SINKWORKER_TEST_PYTHONPATH python3 testdata/producers/confluent_produce.py \\
        --brokers $KAFKA_BROKERS --registry $SCHEMA_REGISTRY_URL \\
        --topic T --format avro|protobuf|json-schema --count N [--start I]

The topic must exist (the test broker does not create topics). Record i (i = start ..
start+count-1) has key {id: i} and value Payment:

    id       i
    name     "user-<i>"
    amount   Decimal(i*101) / 100 with 2 decimals: 0.00, 1.01, ..., 101.00 (Avro bytes
             decimal(10,2); JSON number literal with exactly 2 decimals, never via a float;
             Protobuf string such as "1.01": Protobuf has no decimal type)
    created  2026-01-01T00:00:00Z + i seconds (Avro timestamp-millis; JSON string format
             date-time; Protobuf google.protobuf.Timestamp)
    day      2026-01-01 + (i % 365) days (Avro date; JSON string format date; Protobuf string)
    tags     ["t<i%3>", "x"]
    note     null when i is even, else "n<i>" (Avro union [null, string]; JSON ["null", "string"];
             Protobuf google.protobuf.StringValue, unset when null)

Key and value are serialized with the same format and auto-registered under the subjects T-key and
T-value (TopicNameStrategy). Exits 0 only when every record was delivered, after printing
"produced N".
"""

import argparse
import datetime
import decimal
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
DAY0 = datetime.date(2026, 1, 1)
CENT = decimal.Decimal("0.01")

AVRO_KEY = """{"type": "record", "name": "PaymentKey", "namespace": "sinkworker.test",
 "fields": [{"name": "id", "type": "long"}]}"""

AVRO_VALUE = """{"type": "record", "name": "Payment", "namespace": "sinkworker.test",
 "fields": [
  {"name": "id", "type": "long"},
  {"name": "name", "type": "string"},
  {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
  {"name": "created", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "day", "type": {"type": "int", "logicalType": "date"}},
  {"name": "tags", "type": {"type": "array", "items": "string"}},
  {"name": "note", "type": ["null", "string"], "default": null}
 ]}"""

JSON_KEY = """{"$schema": "http://json-schema.org/draft-07/schema#", "title": "PaymentKey",
 "type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"],
 "additionalProperties": false}"""

JSON_VALUE = """{"$schema": "http://json-schema.org/draft-07/schema#", "title": "Payment",
 "type": "object",
 "properties": {
  "id": {"type": "integer"},
  "name": {"type": "string"},
  "amount": {"type": "number"},
  "created": {"type": "string", "format": "date-time"},
  "day": {"type": "string", "format": "date"},
  "tags": {"type": "array", "items": {"type": "string"}},
  "note": {"type": ["null", "string"]}
 },
 "required": ["id", "name", "amount", "created", "day", "tags", "note"],
 "additionalProperties": false}"""


def payment(i):
    """The value of record i, with Python types (Decimal, datetime, date)."""
    return {
        "id": i,
        "name": "user-%d" % i,
        "amount": (decimal.Decimal(i * 101) / 100).quantize(CENT),
        "created": EPOCH + datetime.timedelta(seconds=i),
        "day": DAY0 + datetime.timedelta(days=i % 365),
        "tags": ["t%d" % (i % 3), "x"],
        "note": None if i % 2 == 0 else "n%d" % i,
    }


def avro_serializers(registry):
    from confluent_kafka.schema_registry.avro import AvroSerializer

    return (AvroSerializer(registry, AVRO_KEY, lambda k, ctx: k),
            AvroSerializer(registry, AVRO_VALUE, lambda v, ctx: v))


def json_value(v, ctx):
    return dict(v, created=v["created"].isoformat().replace("+00:00", "Z"), day=v["day"].isoformat())


def json_encode(obj):
    """Compact JSON like the serializer's default, but a Decimal is written as its exact literal
    (0.00, 1.01, 101.00), never through a float."""
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(k) + ":" + json_encode(v) for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(json_encode(v) for v in obj) + "]"
    return json.dumps(obj, ensure_ascii=False)


def json_serializers(registry):
    from confluent_kafka.schema_registry.json_schema import JSONSerializer

    return (JSONSerializer(JSON_KEY, registry, lambda k, ctx: k, json_encode=json_encode),
            JSONSerializer(JSON_VALUE, registry, json_value, json_encode=json_encode))


def proto_classes():
    """PaymentKey and Payment built from descriptors at run time (no protoc needed)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2, wrappers_pb2
    from google.protobuf import message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="sinkworker_payment.proto", package="sinkworker.test",
                                            syntax="proto3")
    fd.dependency.extend(["google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto"])
    key = fd.message_type.add(name="PaymentKey")
    key.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    m = fd.message_type.add(name="Payment")
    m.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    m.field.add(name="name", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="amount", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="created", number=4, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=".google.protobuf.Timestamp")
    m.field.add(name="day", number=5, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="tags", number=6, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    m.field.add(name="note", number=7, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=".google.protobuf.StringValue")
    pool = descriptor_pool.Default()
    pool.FindFileByName(timestamp_pb2.DESCRIPTOR.name)
    pool.FindFileByName(wrappers_pb2.DESCRIPTOR.name)
    pool.Add(fd)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("sinkworker.test.PaymentKey")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("sinkworker.test.Payment")))


def proto_serializers(registry):
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer

    key_cls, val_cls = proto_classes()
    conf = {"use.deprecated.format": False}
    ks = ProtobufSerializer(key_cls, registry, conf)
    vs = ProtobufSerializer(val_cls, registry, conf)

    def key(k, ctx):
        return ks(key_cls(id=k["id"]), ctx)

    def value(v, ctx):
        msg = val_cls(id=v["id"], name=v["name"], amount=str(v["amount"]), day=v["day"].isoformat(),
                      tags=v["tags"])
        msg.created.FromDatetime(v["created"])
        if v["note"] is not None:
            msg.note.value = v["note"]
        return vs(msg, ctx)

    return key, value


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--registry", required=True, help="e.g. http://127.0.0.1:8081/apis/ccompat/v7")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--format", required=True, choices=["avro", "protobuf", "json-schema"])
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--start", type=int, default=0)
    args = ap.parse_args()

    registry = SchemaRegistryClient({"url": args.registry})
    key_ser, val_ser = {"avro": avro_serializers, "json-schema": json_serializers,
                        "protobuf": proto_serializers}[args.format](registry)
    producer = Producer({"bootstrap.servers": args.brokers, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})

    delivered, failed = [0], []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(str(err))
        else:
            delivered[0] += 1

    kctx = SerializationContext(args.topic, MessageField.KEY)
    vctx = SerializationContext(args.topic, MessageField.VALUE)
    for i in range(args.start, args.start + args.count):
        v = payment(i)
        while True:
            try:
                producer.produce(args.topic, key=key_ser({"id": i}, kctx), value=val_ser(v, vctx),
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(60)
    if left or failed or delivered[0] != args.count:
        print("delivered %d of %d (%d undelivered, errors: %s)"
              % (delivered[0], args.count, left, "; ".join(sorted(set(failed)))[:500]), file=sys.stderr)
        return 1
    print("produced %d" % delivered[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
