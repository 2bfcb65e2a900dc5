// Package broker does the bench harnesses' housekeeping on the Kafka broker
// through their kadm.Client: create a topic and wait for its leaders, read
// its end offsets, and delete topics and groups that may already be gone.
package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// CreateTopic creates topic with parts partitions and replication factor 1
// (the bench broker is a single node), or finds it already there (a retried
// measurement may have created it), and waits up to 60 s until every
// partition has a leader.
func CreateTopic(ctx context.Context, adm *kadm.Client, topic string, parts int32) error {
	resp, err := adm.CreateTopic(ctx, parts, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		ends, err := EndOffsets(ctx, adm, topic)
		if err == nil && len(ends) == int(parts) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s: partitions have no leader after 60s: %v", topic, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// EndOffsets returns each partition's high watermark.
func EndOffsets(ctx context.Context, adm *kadm.Client, topic string) (map[int32]int64, error) {
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	ends := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends, nil
}

// DeleteTopic deletes topic; one that does not exist is no error.
func DeleteTopic(ctx context.Context, adm *kadm.Client, topic string) error {
	resp, err := adm.DeleteTopic(ctx, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return err
	}
	return nil
}

// DeleteGroup deletes a consumer group; one that does not exist is no
// error. A group that still has members fails with kerr.NonEmptyGroup.
func DeleteGroup(ctx context.Context, adm *kadm.Client, group string) error {
	resp, err := adm.DeleteGroup(ctx, group)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return err
	}
	return nil
}
