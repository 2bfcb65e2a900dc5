package demo

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter headers, Kafka Connect's names (see the README's dead-letter paragraph).
const (
	headerPartition = "__connect.errors.partition"
	headerOffset    = "__connect.errors.offset"
	headerClass     = "__connect.errors.exception.class.name"
	headerMessage   = "__connect.errors.exception.message"
)

// readDLQ reads topic from the start to its current end offsets.
func readDLQ(ctx context.Context, brokers []string, topic string) ([]dlqRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(250*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("dead-letter topic %s: %w", topic, err)
	}
	left := map[int32]int64{} // partition -> end offset, while not reached
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	var out []dlqRecord
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read dead-letter topic %s: %w", topic, err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			out = append(out, toDLQRecord(rec))
			if end, ok := left[rec.Partition]; ok && rec.Offset+1 >= end {
				delete(left, rec.Partition)
			}
		})
	}
	return out, nil
}

func toDLQRecord(rec *kgo.Record) dlqRecord {
	d := dlqRecord{key: rec.Key, value: rec.Value, dl: DeadLetter{Partition: -1, Offset: -1}}
	for _, h := range rec.Headers {
		v := string(h.Value)
		switch h.Key {
		case headerPartition:
			if n, err := strconv.ParseInt(v, 10, 32); err == nil {
				d.dl.Partition = int32(n)
			}
		case headerOffset:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				d.dl.Offset = n
			}
		case headerClass:
			d.dl.Class = v
		case headerMessage:
			d.dl.Message = v
		}
	}
	return d
}
