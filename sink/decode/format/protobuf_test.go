package format

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// pbTestSchema covers every field kind the type map names. Its messages
// by index: 0 All (nested: 0 Inner, 1 the map entry CountsEntry), 1 Event
// (nested: 0 Created), 2 Deep (nested: 0 Mid, nested: 0 Leaf).
const pbTestSchema = `syntax = "proto3";
package sw.test;

import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";
import "shop/money.proto";

enum Color {
  COLOR_UNSPECIFIED = 0;
  RED = 1;
  GREEN = 2;
}

message All {
  message Inner {
    string name = 1;
    Color color = 2;
    google.protobuf.Timestamp at = 3;
  }
  int32 i32 = 1;
  sint32 s32 = 2;
  sfixed32 sf32 = 3;
  int64 i64 = 4;
  sint64 s64 = 5;
  sfixed64 sf64 = 6;
  uint32 u32 = 7;
  fixed32 f32 = 8;
  uint64 u64 = 9;
  fixed64 f64 = 10;
  float fl = 11;
  double db = 12;
  bool b = 13;
  string s = 14;
  bytes by = 15;
  Color color = 16;
  google.protobuf.Timestamp ts = 17;
  google.protobuf.Duration dur = 18;
  google.protobuf.StringValue note = 19;
  google.protobuf.Int64Value count = 20;
  optional int32 opt = 21;
  repeated string tags = 22;
  repeated int64 nums = 23;
  repeated Inner inners = 24;
  map<int32, string> counts = 25;
  Inner inner = 26;
  oneof choice {
    string text = 27;
    Inner sub = 28;
  }
  shop.Money price = 29;
  repeated Color colors = 30;
  google.protobuf.UInt64Value big = 31;
  google.protobuf.BytesValue blob = 32;
}

message Event {
  message Created {
    int64 id = 1;
  }
  string kind = 1;
}

message Deep {
  message Mid {
    message Leaf {
      bool ok = 1;
    }
  }
}
`

// pbTestRefs are the imports of pbTestSchema by path; money.proto has a
// reference of its own.
var pbTestRefs = map[string]Schema{
	"shop/money.proto": {
		Text: `syntax = "proto3";
package shop;
import "shop/currency.proto";
message Money {
  string units = 1;
  Currency currency = 2;
}`,
		References: map[string]Schema{
			"shop/currency.proto": {Text: `syntax = "proto3";
package shop;
enum Currency { CURRENCY_UNSPECIFIED = 0; EUR = 1; }`},
		},
	},
}

// allUnset is the JSON of an All with no field set: proto3 scalars at
// their default, fields with presence null, lists and maps empty.
const allUnset = `{"i32":0,"s32":0,"sf32":0,"i64":0,"s64":0,"sf64":0,"u32":0,"f32":0,` +
	`"u64":0,"f64":0,"fl":0,"db":0,"b":false,"s":"","by":"\\x","color":"COLOR_UNSPECIFIED",` +
	`"ts":null,"dur":null,"note":null,"count":null,"opt":null,"tags":[],"nums":[],"inners":[],` +
	`"counts":{},"inner":null,"text":null,"sub":null,"price":null,"colors":[],"big":null,"blob":null}`

func compilePbTest(t testing.TB) *protobufDecoder {
	t.Helper()
	d, err := CompileProtobuf(Schema{Text: pbTestSchema, References: pbTestRefs})
	require.NoError(t, err)
	return d.(*protobufDecoder)
}

// pbNew returns an empty message of the type at path ("All", "All.Inner").
func pbNew(t testing.TB, d *protobufDecoder, path string) *dynamicpb.Message {
	t.Helper()
	names := strings.Split(path, ".")
	md := d.file.Messages().ByName(protoreflect.Name(names[0]))
	for _, n := range names[1:] {
		require.NotNil(t, md, path)
		md = md.Messages().ByName(protoreflect.Name(n))
	}
	require.NotNil(t, md, path)
	return dynamicpb.NewMessage(md)
}

func pbFD(t testing.TB, m protoreflect.Message, name string) protoreflect.FieldDescriptor {
	t.Helper()
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	require.NotNil(t, fd, name)
	return fd
}

// pbSet sets field name of m to v (a Go scalar, a protoreflect.Message or
// a protoreflect.EnumNumber) and returns m.
func pbSet(t testing.TB, m protoreflect.Message, name string, v any) protoreflect.Message {
	t.Helper()
	m.Set(pbFD(t, m, name), protoreflect.ValueOf(v))
	return m
}

// pbSub returns the message held by field name of m, set.
func pbSub(t testing.TB, m protoreflect.Message, name string) protoreflect.Message {
	t.Helper()
	return m.Mutable(pbFD(t, m, name)).Message()
}

// pbBody is the body of m as Confluent frames it after the schema id:
// the message indexes, then the message.
func pbBody(t testing.TB, m protoreflect.Message, index ...int64) []byte {
	t.Helper()
	var b []byte
	if len(index) == 1 && index[0] == 0 {
		b = append(b, 0)
	} else {
		b = binary.AppendVarint(b, int64(len(index)))
		for _, i := range index {
			b = binary.AppendVarint(b, i)
		}
	}
	out, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, m.Interface())
	require.NoError(t, err)
	return out
}

func pbTimestampOf(t testing.TB, m protoreflect.Message, secs int64, nanos int32) {
	t.Helper()
	pbSet(t, m, "seconds", secs)
	pbSet(t, m, "nanos", nanos)
}

// pbFillAll sets every field of an All but the oneof member sub (count
// is set, holding 0).
func pbFillAll(t testing.TB, m protoreflect.Message) {
	t.Helper()
	pbSet(t, m, "i32", int32(math.MinInt32))
	pbSet(t, m, "s32", int32(-7))
	pbSet(t, m, "sf32", int32(math.MaxInt32))
	pbSet(t, m, "i64", int64(math.MinInt64))
	pbSet(t, m, "s64", int64(-9007199254740993))
	pbSet(t, m, "sf64", int64(math.MaxInt64))
	pbSet(t, m, "u32", uint32(math.MaxUint32))
	pbSet(t, m, "f32", uint32(7))
	pbSet(t, m, "u64", uint64(math.MaxUint64))
	pbSet(t, m, "f64", uint64(1)<<63)
	pbSet(t, m, "fl", float32(1.1))
	pbSet(t, m, "db", 0.1)
	pbSet(t, m, "b", true)
	pbSet(t, m, "s", "a \"q\"\n\x01é")
	pbSet(t, m, "by", []byte{0, 0xab, 0xff})
	pbSet(t, m, "color", protoreflect.EnumNumber(2))
	pbTimestampOf(t, pbSub(t, m, "ts"), 1700000000, 123456789)
	pbTimestampOf(t, pbSub(t, m, "dur"), 90061, 500000000)
	pbSet(t, pbSub(t, m, "note"), "value", "hi")
	pbSub(t, m, "count") // set, holding the default 0: not null
	pbSet(t, m, "opt", int32(0))
	tags := m.Mutable(pbFD(t, m, "tags")).List()
	tags.Append(protoreflect.ValueOf("x"))
	tags.Append(protoreflect.ValueOf("y,z"))
	m.Mutable(pbFD(t, m, "nums")).List().Append(protoreflect.ValueOf(int64(-1)))
	inners := m.Mutable(pbFD(t, m, "inners")).List()
	in := inners.NewElement()
	pbSet(t, in.Message(), "name", "n1")
	inners.Append(in)
	counts := m.Mutable(pbFD(t, m, "counts")).Map()
	for _, k := range []int32{10, -2, 3} {
		counts.Set(protoreflect.ValueOf(k).MapKey(), protoreflect.ValueOf("v"))
	}
	inner := pbSub(t, m, "inner")
	pbSet(t, inner, "color", protoreflect.EnumNumber(1))
	pbTimestampOf(t, pbSub(t, inner, "at"), -62135596800, 0)
	pbSet(t, m, "text", "chosen")
	price := pbSub(t, m, "price")
	pbSet(t, price, "units", "12.50")
	pbSet(t, price, "currency", protoreflect.EnumNumber(1))
	colors := m.Mutable(pbFD(t, m, "colors")).List()
	colors.Append(protoreflect.ValueOf(protoreflect.EnumNumber(1)))
	colors.Append(protoreflect.ValueOf(protoreflect.EnumNumber(9)))
	pbSet(t, pbSub(t, m, "big"), "value", uint64(math.MaxUint64))
	pbSet(t, pbSub(t, m, "blob"), "value", []byte{1})
}

func TestProtobufValues(t *testing.T) {
	d := compilePbTest(t)
	tests := []struct {
		name  string
		build func(m protoreflect.Message)
		want  string
	}{
		{name: "unset", build: func(protoreflect.Message) {}, want: allUnset},
		{
			name:  "every kind",
			build: func(m protoreflect.Message) { pbFillAll(t, m) },
			want: `{"i32":-2147483648,"s32":-7,"sf32":2147483647,"i64":-9223372036854775808,` +
				`"s64":-9007199254740993,"sf64":9223372036854775807,"u32":4294967295,"f32":7,` +
				`"u64":18446744073709551615,"f64":9223372036854775808,"fl":1.1,"db":0.1,"b":true,` +
				`"s":"a \"q\"\n\u0001é","by":"\\x00abff","color":"GREEN",` +
				`"ts":"2023-11-14T22:13:20.123456789Z","dur":"P0M0DT90061.500000000S","note":"hi",` +
				`"count":0,"opt":0,"tags":["x","y,z"],"nums":[-1],` +
				`"inners":[{"name":"n1","color":"COLOR_UNSPECIFIED","at":null}],` +
				`"counts":{"-2":"v","3":"v","10":"v"},` +
				`"inner":{"name":"","color":"RED","at":"0001-01-01T00:00:00Z"},` +
				`"text":"chosen","sub":null,"price":{"units":"12.50","currency":"EUR"},` +
				`"colors":["RED","9"],"big":18446744073709551615,"blob":"\\x01"}`,
		},
		{
			name: "oneof message member, odd floats, negative and long durations",
			build: func(m protoreflect.Message) {
				pbSet(t, pbSub(t, m, "sub"), "name", "s")
				pbSet(t, m, "fl", float32(math.Inf(-1)))
				pbSet(t, m, "db", math.NaN())
				pbTimestampOf(t, pbSub(t, m, "dur"), -1, -250000000)
				pbTimestampOf(t, pbSub(t, m, "ts"), 253402300799, 999999999)
			},
			want: strings.NewReplacer(
				`"fl":0`, `"fl":"-Infinity"`,
				`"db":0`, `"db":"NaN"`,
				`"ts":null`, `"ts":"9999-12-31T23:59:59.999999999Z"`,
				`"dur":null`, `"dur":"P0M0DT-1.250000000S"`,
				`"sub":null`, `"sub":{"name":"s","color":"COLOR_UNSPECIFIED","at":null}`,
			).Replace(allUnset),
		},
		{
			name: "a duration whose nanoseconds overflow int64",
			build: func(m protoreflect.Message) {
				pbTimestampOf(t, pbSub(t, m, "dur"), -315576000000, -1)
			},
			want: strings.Replace(allUnset, `"dur":null`, `"dur":"P0M0DT-315576000000.000000001S"`, 1),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := pbNew(t, d, "All")
			tc.build(m)
			msg, err := proto.Marshal(m)
			require.NoError(t, err)
			// [0] as the single byte 0, and in full (count 1, index 0).
			for _, index := range [][]byte{{0}, {2, 0}} {
				body := append(index, msg...)
				out, shape, err := d.AppendJSON([]byte("prefix"), body)
				require.NoError(t, err)
				assert.Equal(t, "prefix"+tc.want, string(out))
				assert.True(t, json.Valid(out[len("prefix"):]), "valid JSON")
				assert.Same(t, d.top[0].msg.shape, shape)
			}
		})
	}
}

func TestProtobufShape(t *testing.T) {
	d := compilePbTest(t)
	_, shape, err := d.AppendJSON(nil, pbBody(t, pbNew(t, d, "All"), 0))
	require.NoError(t, err)
	want := []Column{
		{Name: "i32", Type: "integer", Nullable: false}, {Name: "s32", Type: "integer", Nullable: false}, {Name: "sf32", Type: "integer", Nullable: false},
		{Name: "i64", Type: "bigint", Nullable: false}, {Name: "s64", Type: "bigint", Nullable: false}, {Name: "sf64", Type: "bigint", Nullable: false},
		{Name: "u32", Type: "bigint", Nullable: false}, {Name: "f32", Type: "bigint", Nullable: false},
		{Name: "u64", Type: "numeric(20,0)", Nullable: false}, {Name: "f64", Type: "numeric(20,0)", Nullable: false},
		{Name: "fl", Type: "real", Nullable: false}, {Name: "db", Type: "double precision", Nullable: false}, {Name: "b", Type: "boolean", Nullable: false},
		{Name: "s", Type: "text", Nullable: false}, {Name: "by", Type: "bytea", Nullable: false}, {Name: "color", Type: "text", Nullable: false},
		{Name: "ts", Type: "timestamptz", Nullable: true}, {Name: "dur", Type: "interval", Nullable: true},
		{Name: "note", Type: "text", Nullable: true}, {Name: "count", Type: "bigint", Nullable: true}, {Name: "opt", Type: "integer", Nullable: true},
		{Name: "tags", Type: "text[]", Nullable: false}, {Name: "nums", Type: "bigint[]", Nullable: false}, {Name: "inners", Type: "jsonb", Nullable: false},
		{Name: "counts", Type: "jsonb", Nullable: false}, {Name: "inner", Type: "jsonb", Nullable: true},
		{Name: "text", Type: "text", Nullable: true}, {Name: "sub", Type: "jsonb", Nullable: true}, {Name: "price", Type: "jsonb", Nullable: true},
		{Name: "colors", Type: "text[]", Nullable: false}, {Name: "big", Type: "numeric(20,0)", Nullable: true}, {Name: "blob", Type: "bytea", Nullable: true},
	}
	require.NotNil(t, shape)
	assert.Equal(t, want, shape.Columns)

	// Every body of one message type gets the same Shape.
	_, again, err := d.AppendJSON(nil, pbBody(t, pbSet(t, pbNew(t, d, "All"), "s", "x"), 0))
	require.NoError(t, err)
	assert.Same(t, shape, again)
}

func TestProtobufMessageIndexes(t *testing.T) {
	d := compilePbTest(t)
	tests := []struct {
		name  string
		path  string
		index []int64
		want  string
		cols  []string
	}{
		{"first message, single 0", "All", []int64{0}, allUnset, nil},
		{"top-level second", "Event", []int64{1}, `{"kind":"k"}`, []string{"kind"}},
		{"nested [1,0]", "Event.Created", []int64{1, 0}, `{"id":42}`, []string{"id"}},
		{"nested [0,0]", "All.Inner", []int64{0, 0}, `{"name":"k","color":"COLOR_UNSPECIFIED","at":null}`, nil},
		{"two deep [2,0,0]", "Deep.Mid.Leaf", []int64{2, 0, 0}, `{"ok":true}`, []string{"ok"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := pbNew(t, d, tc.path)
			switch tc.path {
			case "Event":
				pbSet(t, m, "kind", "k")
			case "Event.Created":
				pbSet(t, m, "id", int64(42))
			case "All.Inner":
				pbSet(t, m, "name", "k")
			case "Deep.Mid.Leaf":
				pbSet(t, m, "ok", true)
			}
			out, shape, err := d.AppendJSON(nil, pbBody(t, m, tc.index...))
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(out))
			require.NotNil(t, shape)
			for i, c := range tc.cols {
				assert.Equal(t, c, shape.Columns[i].Name)
			}
		})
	}
}

func TestProtobufBadBodies(t *testing.T) {
	d := compilePbTest(t)
	valid := pbBody(t, pbSet(t, pbNew(t, d, "All"), "s", "hello"), 0)
	badUTF8 := pbBody(t, pbSet(t, pbNew(t, d, "Event"), "kind", "ok"), 1)
	badUTF8 = append(badUTF8[:len(badUTF8)-2], 0xff, 0xfe)
	badTS := pbNew(t, d, "All")
	pbTimestampOf(t, pbSub(t, badTS, "ts"), 253402300800, 0)
	badNanos := pbNew(t, d, "All")
	pbTimestampOf(t, pbSub(t, badNanos, "ts"), 0, -1)
	badDur := pbNew(t, d, "All")
	pbTimestampOf(t, pbSub(t, badDur, "dur"), 1, -1)

	tests := []struct {
		name string
		body []byte
		want error
	}{
		// Indexes as zigzag varints: count, then each index.
		{"top index past the end", []byte{2, 6}, ErrSchema},       // [3]
		{"nested index past the end", []byte{4, 2, 6}, ErrSchema}, // [1,3]
		{"negative index", []byte{2, 1}, ErrSchema},               // [-1]
		{"index under a leaf", []byte{8, 4, 0, 0, 0}, ErrSchema},  // [2,0,0,0]
		{"empty body", nil, ErrCorrupt},
		{"count past the body", []byte{6, 0}, ErrCorrupt},
		{"negative count", []byte{1, 0}, ErrCorrupt},
		{"truncated count varint", []byte{0x80}, ErrCorrupt},
		{"truncated index varint", []byte{2, 0x80}, ErrCorrupt},
		{"truncated message", valid[:len(valid)-2], ErrCorrupt},
		{"bad wire type", []byte{0, 0x0f}, ErrCorrupt},
		{"invalid UTF-8 in a string", badUTF8, ErrCorrupt},
		{"timestamp past 9999", pbBody(t, badTS, 0), ErrCorrupt},
		{"timestamp negative nanos", pbBody(t, badNanos, 0), ErrCorrupt},
		{"duration signs differ", pbBody(t, badDur, 0), ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, shape, err := d.AppendJSON([]byte("keep"), tc.body)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			assert.Equal(t, "keep", string(out), "dst is returned as it was")
			assert.Nil(t, shape)
		})
	}
}

func TestCompileProtobuf(t *testing.T) {
	tests := []struct {
		name string
		s    Schema
		ok   bool
	}{
		{"well-known types only", Schema{Text: `syntax = "proto3";
import "google/protobuf/timestamp.proto";
import "google/protobuf/struct.proto";
message M { google.protobuf.Timestamp at = 1; google.protobuf.Struct attrs = 2; }`}, true},
		{"proto2", Schema{Text: `syntax = "proto2";
message M { optional int64 id = 1; optional string name = 2; }`}, true},
		{"reference named like the root file", Schema{
			Text: `syntax = "proto3"; import "sinkworker/registered.proto"; message M { Dep d = 1; }`,
			References: map[string]Schema{
				"sinkworker/registered.proto": {Text: `syntax = "proto3"; message Dep { int32 x = 1; }`},
			},
		}, true},
		{"syntax error", Schema{Text: `syntax = "proto3"; message {`}, false},
		{"missing import", Schema{Text: `syntax = "proto3"; import "nowhere.proto"; message M {}`}, false},
		{"unknown type", Schema{Text: `syntax = "proto3"; message M { Nope n = 1; }`}, false},
		{"no message", Schema{Text: `syntax = "proto3"; enum E { E0 = 0; }`}, false},
		{"one import, two texts", Schema{
			Text: `syntax = "proto3"; import "a.proto"; import "b.proto"; message M {}`,
			References: map[string]Schema{
				"a.proto": {Text: `syntax = "proto3"; import "c.proto";`, References: map[string]Schema{
					"c.proto": {Text: `syntax = "proto3"; message C {}`}}},
				"b.proto": {Text: `syntax = "proto3"; import "c.proto";`, References: map[string]Schema{
					"c.proto": {Text: `syntax = "proto3"; message Other {}`}}},
			},
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := CompileProtobuf(tc.s)
			if !tc.ok {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrSchema)
				return
			}
			require.NoError(t, err)
			out, shape, err := d.AppendJSON(nil, []byte{0})
			require.NoError(t, err)
			assert.True(t, json.Valid(out), string(out))
			assert.NotNil(t, shape)
		})
	}
}

func TestProtobufProto2Presence(t *testing.T) {
	d, err := CompileProtobuf(Schema{Text: `syntax = "proto2";
message M { required int64 id = 1; optional string name = 2; optional int32 n = 3 [default = 5]; }`})
	require.NoError(t, err)
	pd := d.(*protobufDecoder)

	m := pbNew(t, pd, "M")
	pbSet(t, m, "id", int64(1))
	out, shape, err := d.AppendJSON(nil, pbBody(t, m, 0))
	require.NoError(t, err)
	assert.Equal(t, `{"id":1,"name":null,"n":null}`, string(out))
	assert.Equal(t, []Column{{Name: "id", Type: "bigint", Nullable: false}, {Name: "name", Type: "text", Nullable: true}, {Name: "n", Type: "integer", Nullable: true}}, shape.Columns)

	// A missing required field is a body the schema cannot read.
	_, _, err = d.AppendJSON(nil, []byte{0})
	assert.ErrorIs(t, err, ErrCorrupt)
}

func TestProtobufRecursiveType(t *testing.T) {
	d, err := CompileProtobuf(Schema{Text: `syntax = "proto3";
message Node { string v = 1; repeated Node kids = 2; Node next = 3; }`})
	require.NoError(t, err)
	pd := d.(*protobufDecoder)
	m := pbNew(t, pd, "Node")
	pbSet(t, m, "v", "a")
	pbSet(t, pbSub(t, m, "next"), "v", "b")
	kids := m.Mutable(pbFD(t, m, "kids")).List()
	k := kids.NewElement()
	pbSet(t, k.Message(), "v", "c")
	kids.Append(k)
	out, _, err := d.AppendJSON(nil, pbBody(t, m, 0))
	require.NoError(t, err)
	assert.Equal(t, `{"v":"a","kids":[{"v":"c","kids":[],"next":null}],"next":{"v":"b","kids":[],"next":null}}`, string(out))
}

func TestProtobufMapKeys(t *testing.T) {
	d, err := CompileProtobuf(Schema{Text: `syntax = "proto3";
import "google/protobuf/timestamp.proto";
message M {
  map<string, google.protobuf.Timestamp> at = 1;
  map<bool, bytes> flags = 2;
  map<uint64, double> big = 3;
}`})
	require.NoError(t, err)
	pd := d.(*protobufDecoder)
	m := pbNew(t, pd, "M")
	at := m.Mutable(pbFD(t, m, "at")).Map()
	for _, k := range []string{"z", "\"q\"", "a"} {
		v := at.NewValue()
		pbTimestampOf(t, v.Message(), 0, 1000)
		at.Set(protoreflect.ValueOf(k).MapKey(), v)
	}
	flags := m.Mutable(pbFD(t, m, "flags")).Map()
	flags.Set(protoreflect.ValueOf(true).MapKey(), protoreflect.ValueOf([]byte{1}))
	flags.Set(protoreflect.ValueOf(false).MapKey(), protoreflect.ValueOf([]byte{}))
	big := m.Mutable(pbFD(t, m, "big")).Map()
	big.Set(protoreflect.ValueOf(uint64(math.MaxUint64)).MapKey(), protoreflect.ValueOf(1.5))
	big.Set(protoreflect.ValueOf(uint64(2)).MapKey(), protoreflect.ValueOf(math.Copysign(0, -1)))
	out, _, err := d.AppendJSON(nil, pbBody(t, m, 0))
	require.NoError(t, err)
	assert.Equal(t, `{"at":{"\"q\"":"1970-01-01T00:00:00.000001Z","a":"1970-01-01T00:00:00.000001Z",`+
		`"z":"1970-01-01T00:00:00.000001Z"},"flags":{"false":"\\x","true":"\\x01"},`+
		`"big":{"2":-0,"18446744073709551615":1.5}}`, string(out))
}

func TestProtobufConcurrent(t *testing.T) {
	d := compilePbTest(t)
	bodies := [][]byte{
		pbBody(t, pbSet(t, pbNew(t, d, "All"), "s", "x"), 0),
		pbBody(t, pbSet(t, pbNew(t, d, "Event.Created"), "id", int64(7)), 1, 0),
	}
	want := make([]string, len(bodies))
	for i, b := range bodies {
		out, _, err := d.AppendJSON(nil, b)
		require.NoError(t, err)
		want[i] = string(out)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				b := (g + i) % len(bodies)
				out, _, err := d.AppendJSON(nil, bodies[b])
				if err == nil && string(out) != want[b] {
					err = errors.New("different JSON: " + string(out))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func FuzzProtobuf(f *testing.F) {
	d := compilePbTest(f)
	full := pbNew(f, d, "All")
	pbSet(f, full, "s", "seed")
	pbSet(f, full, "u64", uint64(math.MaxUint64))
	pbTimestampOf(f, pbSub(f, full, "ts"), 1, 2)
	pbTimestampOf(f, pbSub(f, full, "dur"), 3, 4)
	pbSet(f, pbSub(f, full, "note"), "value", "n")
	full.Mutable(pbFD(f, full, "tags")).List().Append(protoreflect.ValueOf("t"))
	full.Mutable(pbFD(f, full, "counts")).Map().Set(protoreflect.ValueOf(int32(1)).MapKey(), protoreflect.ValueOf("c"))
	pbSet(f, pbSub(f, full, "inner"), "name", "i")
	f.Add(pbBody(f, full, 0))
	f.Add(pbBody(f, pbSet(f, pbNew(f, d, "Event.Created"), "id", int64(-1)), 1, 0))
	f.Add([]byte{0})
	f.Add([]byte{4, 4, 0, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		out, shape, err := d.AppendJSON(nil, body)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrSchema) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrSchema: %v", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %q", out)
		}
		if shape == nil {
			t.Fatal("no Shape for a message")
		}
	})
}

// pbDescriptorText is fd as Confluent's Python serializer registers it: a
// serialized FileDescriptorProto in standard base64. Its fields have no
// json_name, as in a descriptor built by hand rather than by protoc.
func pbDescriptorText(t testing.TB, fd protoreflect.FileDescriptor) string {
	t.Helper()
	fdp := protodesc.ToFileDescriptorProto(fd)
	var clearJSON func([]*descriptorpb.DescriptorProto)
	clearJSON = func(msgs []*descriptorpb.DescriptorProto) {
		for _, m := range msgs {
			for _, f := range m.GetField() {
				f.JsonName = nil
			}
			clearJSON(m.GetNestedType())
		}
	}
	clearJSON(fdp.GetMessageType())
	raw, err := proto.Marshal(fdp)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(raw)
}

func TestProtobufDescriptorText(t *testing.T) {
	src := `syntax = "proto3";
package sw.desc;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message Key { int64 id = 1; }
message Row {
  int64 id = 1;
  google.protobuf.Timestamp at = 2;
  google.protobuf.StringValue note = 3;
  repeated string tag_list = 4;
  string nOTE_2 = 5;
}`
	fromSource, err := CompileProtobuf(Schema{Text: src})
	require.NoError(t, err)
	text := pbDescriptorText(t, fromSource.(*protobufDecoder).file)
	require.NotContains(t, text, "syntax", "the descriptor form is not source")
	fromDesc, err := CompileProtobuf(Schema{Text: text})
	require.NoError(t, err)

	full := pbNew(t, fromSource.(*protobufDecoder), "Row")
	pbSet(t, full, "id", int64(math.MaxInt64))
	pbTimestampOf(t, pbSub(t, full, "at"), 1700000000, 5000)
	pbSet(t, pbSub(t, full, "note"), "value", "n")
	full.Mutable(pbFD(t, full, "tag_list")).List().Append(protoreflect.ValueOf("a"))
	for name, m := range map[string]protoreflect.Message{
		"unset": pbNew(t, fromSource.(*protobufDecoder), "Row"),
		"full":  full,
	} {
		t.Run(name, func(t *testing.T) {
			body := pbBody(t, m, 1)
			want, wantShape, err := fromSource.AppendJSON(nil, body)
			require.NoError(t, err)
			got, gotShape, err := fromDesc.AppendJSON(nil, body)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got))
			require.NotNil(t, gotShape)
			assert.Equal(t, wantShape.Columns, gotShape.Columns)
		})
	}
	out, _, err := fromDesc.AppendJSON(nil, pbBody(t, full, 1))
	require.NoError(t, err)
	assert.Equal(t, `{"id":9223372036854775807,"at":"2023-11-14T22:13:20.000005Z","note":"n","tag_list":["a"],"nOTE_2":""}`, string(out))
}

// Either form may import the other: the descriptor of pbTestSchema with
// shop/money.proto as a descriptor too, whose own reference stays source.
func TestProtobufDescriptorMixedReferences(t *testing.T) {
	src := compilePbTest(t)
	money := src.file.Imports().Get(3).FileDescriptor
	require.Equal(t, "shop/money.proto", money.Path())
	refs := map[string]Schema{"shop/money.proto": {
		Text:       pbDescriptorText(t, money),
		References: pbTestRefs["shop/money.proto"].References,
	}}
	m := pbNew(t, src, "All")
	pbFillAll(t, m)
	body := pbBody(t, m, 0)
	want, _, err := src.AppendJSON(nil, body)
	require.NoError(t, err)
	for name, s := range map[string]Schema{
		"descriptor root": {Text: pbDescriptorText(t, src.file), References: refs},
		"source root":     {Text: pbTestSchema, References: refs},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := CompileProtobuf(s)
			require.NoError(t, err)
			got, shape, err := d.AppendJSON(nil, body)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got))
			assert.Equal(t, src.top[0].msg.shape.Columns, shape.Columns)
		})
	}
}

func TestProtobufBadDescriptorText(t *testing.T) {
	b64 := func(b ...byte) string { return base64.StdEncoding.EncodeToString(b) }
	unknownType := &descriptorpb.FileDescriptorProto{
		Name:   proto.String("x.proto"),
		Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("M"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name:     proto.String("n"),
				Number:   proto.Int32(1),
				Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Type:     descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(),
				TypeName: proto.String(".Nope"),
			}},
		}},
	}
	raw, err := proto.Marshal(unknownType)
	require.NoError(t, err)
	missingDep := proto.Clone(unknownType).(*descriptorpb.FileDescriptorProto)
	missingDep.Dependency = []string{"nowhere.proto"}
	missingDep.MessageType[0].Field = nil
	rawDep, err := proto.Marshal(missingDep)
	require.NoError(t, err)

	tests := []struct {
		name string
		s    Schema
	}{
		{"base64, not a descriptor", Schema{Text: b64(0, 0, 0)}}, // field number 0
		{"base64 of text", Schema{Text: b64([]byte("hello world")...)}},
		{"descriptor without a message", Schema{Text: b64(0x0a, 0x01, 'x')}}, // name "x"
		{"descriptor with an unknown type", Schema{Text: base64.StdEncoding.EncodeToString(raw)}},
		{"descriptor with a missing import", Schema{Text: base64.StdEncoding.EncodeToString(rawDep)}},
		{"reference not a descriptor", Schema{
			Text:       `syntax = "proto3"; import "a.proto"; message M {}`,
			References: map[string]Schema{"a.proto": {Text: b64(0xff, 0xff)}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CompileProtobuf(tc.s)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrSchema)
		})
	}
}

// testdata/protobuf_python_descriptor.b64 is the value schema that
// testdata/producers/confluent_produce.py --format protobuf registers
// (confluent-kafka's ProtobufSerializer), as Apicurio's ccompat API gives
// it back: a base64 descriptor importing timestamp.proto and
// wrappers.proto, with no references.
func TestProtobufPythonDescriptor(t *testing.T) {
	text, err := os.ReadFile("testdata/protobuf_python_descriptor.b64")
	require.NoError(t, err)
	d, err := CompileProtobuf(Schema{Text: string(text)})
	require.NoError(t, err)
	// Record 1 of that run, after the magic byte and schema id: indexes
	// [1] (Payment), then the message.
	body, err := hex.DecodeString("020208011206757365722d311a04312e303122060881f2d6ca062a0a323032362d30312d3032320274313201783a040a026e31")
	require.NoError(t, err)
	out, shape, err := d.AppendJSON(nil, body)
	require.NoError(t, err)
	assert.Equal(t, `{"id":1,"name":"user-1","amount":"1.01","created":"2026-01-01T00:00:01Z",`+
		`"day":"2026-01-02","tags":["t1","x"],"note":"n1"}`, string(out))
	require.NotNil(t, shape)
	assert.Equal(t, []Column{
		{Name: "id", Type: "bigint", Nullable: false}, {Name: "name", Type: "text", Nullable: false}, {Name: "amount", Type: "text", Nullable: false},
		{Name: "created", Type: "timestamptz", Nullable: true}, {Name: "day", Type: "text", Nullable: false}, {Name: "tags", Type: "text[]", Nullable: false},
		{Name: "note", Type: "text", Nullable: true},
	}, shape.Columns)
}
