package dlq

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// SourceOf rebuilds the original record from a dead letter's headers: its
// topic, partition and offset (required), its timestamp (HeaderTimestamp,
// else the letter's own: Kafka Connect's dead letters carry the source
// timestamp there), its key and value, and its own headers. The other
// dead-letter headers stay among the headers, as redrive ignores them.
func SourceOf(letter *kgo.Record) (*kgo.Record, error) {
	src := &kgo.Record{Key: letter.Key, Value: letter.Value, Timestamp: letter.Timestamp}
	var have int
	for _, h := range letter.Headers {
		var err error
		switch h.Key {
		case HeaderTopic:
			src.Topic, have = string(h.Value), have+1
		case HeaderPartition:
			var p int64
			p, err = strconv.ParseInt(string(h.Value), 10, 32)
			src.Partition, have = int32(p), have+1
		case HeaderOffset:
			src.Offset, err = strconv.ParseInt(string(h.Value), 10, 64)
			have++
		case HeaderTimestamp:
			var ms int64
			ms, err = strconv.ParseInt(string(h.Value), 10, 64)
			src.Timestamp = time.UnixMilli(ms)
		default:
			src.Headers = append(src.Headers, h)
		}
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", h.Key, err)
		}
	}
	if have != 3 {
		return nil, errors.New("missing __connect.errors.topic, partition or offset header")
	}
	return src, nil
}
