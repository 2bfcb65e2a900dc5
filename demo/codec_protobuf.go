package demo

import (
	"context"
	"fmt"
	"strconv"

	"github.com/bufbuild/protocompile"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The Protobuf schemas, one .proto file each for the key and the value;
// the value's fields show the type map (the well-known types come from
// the worker's own copy, so they are not registered as references).
const (
	protoKeySchema = `syntax = "proto3";
package sinkworker.demo;

message UserKey {
  int64 id = 1;
}
`
	protoValueSchema = `syntax = "proto3";
package sinkworker.demo;

import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message User {
  enum Event {
    USER_CREATED = 0;
    POINTS_CHANGED = 1;
  }
  int64 id = 1;
  Event event = 2;
  string name = 3;
  google.protobuf.StringValue email = 4;
  int32 points = 5;
  double score = 6;
  bool gold = 7;
  repeated string tags = 8;
  google.protobuf.Timestamp updated_at = 9;
}
`
)

// protobufCodec writes Protobuf in Confluent's wire format, the messages
// built with dynamicpb from the compiled schemas.
type protobufCodec struct {
	key, value     protoreflect.MessageDescriptor
	keyID, valueID int
}

func newProtobufCodec(reg register, topic string) (*protobufCodec, error) {
	files := map[string]string{"key.proto": protoKeySchema, "value.proto": protoValueSchema}
	comp := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(files)})}
	fds, err := comp.Compile(context.Background(), "key.proto", "value.proto")
	if err != nil {
		return nil, fmt.Errorf("compile the demo's .proto schemas: %w", err)
	}
	c := &protobufCodec{key: fds[0].Messages().Get(0), value: fds[1].Messages().Get(0)}
	if c.keyID, err = reg(topic+"-key", sr.Schema{Schema: protoKeySchema, Type: sr.TypeProtobuf}); err != nil {
		return nil, err
	}
	if c.valueID, err = reg(topic+"-value", sr.Schema{Schema: protoValueSchema, Type: sr.TypeProtobuf}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *protobufCodec) encode(ev *event) (record, error) {
	k := dynamicpb.NewMessage(c.key)
	k.Set(c.key.Fields().ByName("id"), protoreflect.ValueOfInt64(int64(ev.id)))
	key, err := proto.Marshal(k)
	if err != nil {
		return record{}, err
	}
	rec := record{key: frame(c.keyID, []int{0}, key), modelKey: strconv.Itoa(ev.id)}
	if ev.kind == "" {
		return rec, nil
	}
	email, ok := typedEmail(ev)
	tags := typedTags(ev)
	score := float64(ev.points) / 4 // exact in binary
	gold := ev.points >= 1000
	m := dynamicpb.NewMessage(c.value)
	f := c.value.Fields()
	m.Set(f.ByName("id"), protoreflect.ValueOfInt64(int64(ev.id)))
	m.Set(f.ByName("event"), protoreflect.ValueOfEnum(f.ByName("event").Enum().Values().ByName(protoreflect.Name(typedEvent(ev))).Number()))
	m.Set(f.ByName("name"), protoreflect.ValueOfString(ev.name))
	if ok {
		w := m.Mutable(f.ByName("email")).Message()
		w.Set(w.Descriptor().Fields().ByName("value"), protoreflect.ValueOfString(email))
	}
	m.Set(f.ByName("points"), protoreflect.ValueOfInt32(int32(ev.points)))
	m.Set(f.ByName("score"), protoreflect.ValueOfFloat64(score))
	m.Set(f.ByName("gold"), protoreflect.ValueOfBool(gold))
	l := m.Mutable(f.ByName("tags")).List()
	for _, t := range tags {
		l.Append(protoreflect.ValueOfString(t))
	}
	ts := m.Mutable(f.ByName("updated_at")).Message()
	ts.Set(ts.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(ev.at.Unix()))
	ts.Set(ts.Descriptor().Fields().ByName("nanos"), protoreflect.ValueOfInt32(int32(ev.at.Nanosecond())))
	body, err := proto.Marshal(m)
	if err != nil {
		return record{}, err
	}
	rec.value = frame(c.valueID, []int{0}, body)
	rec.row = typedRow("id", strconv.Itoa(ev.id), "event", jsonString(typedEvent(ev)), "name", jsonString(ev.name),
		"email", jsonOptional(email, ok), "points", strconv.Itoa(ev.points),
		"score", strconv.FormatFloat(score, 'f', -1, 64), "gold", strconv.FormatBool(gold),
		"tags", jsonStrings(tags), "updated_at", jsonString(rfc3339Millis(ev.at)))
	return rec, nil
}

func (c *protobufCodec) badKinds() []badKind {
	return append(wireBadKinds("Protobuf"), badKind{"message index [5], not in the schema", func(g record) ([]byte, []byte) {
		v := append([]byte(nil), g.value[:5]...)
		v = append(v, 2, 10) // one index (zigzag 1), index 5 (zigzag 10)
		return g.key, append(v, g.value[6:]...)
	}})
}
