package format

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// pbBenchSchema is a typical event: an id, text, a decimal as text, a
// time, a list and a wrapper.
const pbBenchSchema = `syntax = "proto3";
package bench;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message Order {
  int64 id = 1;
  string name = 2;
  string amount = 3;
  google.protobuf.Timestamp created = 4;
  repeated string tags = 5;
  google.protobuf.StringValue note = 6;
}`

func BenchmarkProtobufAppendJSON(b *testing.B) {
	d, err := CompileProtobuf(Schema{Text: pbBenchSchema})
	require.NoError(b, err)
	pd := d.(*protobufDecoder)
	m := pbNew(b, pd, "Order")
	pbSet(b, m, "id", int64(1234567890123))
	pbSet(b, m, "name", "customer-00042")
	pbSet(b, m, "amount", "1234.56")
	pbTimestampOf(b, pbSub(b, m, "created"), 1700000000, 123456000)
	tags := m.Mutable(pbFD(b, m, "tags")).List()
	tags.Append(protoreflect.ValueOf("priority"))
	tags.Append(protoreflect.ValueOf("eu"))
	pbSet(b, pbSub(b, m, "note"), "value", "leave at the door")
	body := pbBody(b, m, 0)

	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		out, _, err := d.AppendJSON(dst[:0], body)
		if err != nil {
			b.Fatal(err)
		}
		dst = out
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/record")
}
