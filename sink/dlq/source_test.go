package dlq

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestSourceOf: a dead letter gives back its source record's coordinates
// and timestamp (HeaderTimestamp, else the letter's own, as Kafka Connect's
// letters carry it), keeps the source's headers, and a letter without
// coordinates or with a malformed header is refused.
func TestSourceOf(t *testing.T) {
	source := time.UnixMilli(1_700_000_000_123)
	dlqTime := source.Add(time.Hour)
	coords := []kgo.RecordHeader{
		{Key: "trace", Value: []byte("abc")},
		{Key: HeaderTopic, Value: []byte("orders")},
		{Key: HeaderPartition, Value: []byte("3")},
		{Key: HeaderOffset, Value: []byte("42")},
		{Key: HeaderClass, Value: []byte("constraint")},
	}
	with := func(hs ...kgo.RecordHeader) []kgo.RecordHeader {
		return append(append([]kgo.RecordHeader{}, coords...), hs...)
	}
	tests := []struct {
		name    string
		headers []kgo.RecordHeader
		want    time.Time
		wantErr string
	}{
		{name: "sinkworker letter", headers: with(kgo.RecordHeader{Key: HeaderTimestamp, Value: []byte("1700000000123")}), want: source},
		{name: "letter without the timestamp header", headers: coords, want: dlqTime},
		{name: "malformed timestamp", headers: with(kgo.RecordHeader{Key: HeaderTimestamp, Value: []byte("yesterday")}),
			wantErr: "header " + HeaderTimestamp},
		{name: "no coordinates", headers: coords[:2], wantErr: "missing __connect.errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := SourceOf(&kgo.Record{Topic: "orders.dlq", Key: []byte("k"), Value: []byte(`{}`), Timestamp: dlqTime, Headers: tt.headers})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "orders", src.Topic)
			assert.EqualValues(t, 3, src.Partition)
			assert.EqualValues(t, 42, src.Offset)
			assert.True(t, tt.want.Equal(src.Timestamp), "timestamp %v, want %v", src.Timestamp, tt.want)
			assert.Equal(t, []kgo.RecordHeader{coords[0], coords[4]}, src.Headers, "the source's own headers, and the class")
		})
	}
}
