package dlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnsureTopics creates the missing dead-letter topics of sources (each
// source's TopicFor(override, source)) with their source topic's partition
// count and a max.message.bytes of BatchMaxBytes or the source topic's,
// whichever is larger (the largest of each, for one shared DLQ_TOPIC); an
// existing one is left as it is, and a missing source topic is skipped (the
// consumer waits for it). An unreachable broker is an outage, not a reason
// to give up: it waits, with backoff, until ctx ends; other errors
// (authorization) return at once.
func EnsureTopics(ctx context.Context, cl *kgo.Client, log *slog.Logger, sources []string, override string) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.RandomizationFactor = 100*time.Millisecond, 5*time.Second, 0.5
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := createTopics(ctx, kadm.NewClient(cl), sources, override)
		var opErr *net.OpError
		if err != nil && !errors.As(err, &opErr) && !kerr.IsRetriable(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		if err != nil {
			log.Warn("brokers not reachable yet to check the dead-letter topics, retrying", "err", err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(0))
	return err
}

func createTopics(ctx context.Context, adm *kadm.Client, sources []string, override string) error {
	details, err := adm.ListTopics(ctx, sources...)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for t, d := range details {
		if d.Err != nil {
			delete(details, t) // a missing source topic: the consumer waits for it
		}
	}
	limits, err := maxMessageBytes(ctx, adm, details.Names())
	if err != nil {
		return err
	}
	type spec struct {
		partitions int32
		maxBytes   int
	}
	want := map[string]spec{}
	for _, t := range sources {
		d, ok := details[t]
		if !ok {
			continue
		}
		dlq := TopicFor(override, t)
		want[dlq] = spec{
			partitions: max(want[dlq].partitions, int32(len(d.Partitions))),
			maxBytes:   max(want[dlq].maxBytes, BatchMaxBytes, limits[t]),
		}
	}
	for dlq, s := range want {
		limit := strconv.Itoa(s.maxBytes)
		resp, err := adm.CreateTopic(ctx, s.partitions, -1, map[string]*string{"max.message.bytes": &limit}, dlq)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create dead-letter topic %s: %w", dlq, err)
		}
	}
	return nil
}

// maxMessageBytes reads the max.message.bytes of topics. A topic whose
// configs cannot be read (no DescribeConfigs permission) is left out: its
// dead-letter topic gets BatchMaxBytes.
func maxMessageBytes(ctx context.Context, adm *kadm.Client, topics []string) (map[string]int, error) {
	configs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	limits := map[string]int{}
	for _, rc := range configs {
		for _, c := range rc.Configs {
			if rc.Err != nil || c.Key != "max.message.bytes" || c.Value == nil {
				continue
			}
			if n, err := strconv.Atoi(*c.Value); err == nil {
				limits[rc.Name] = n
			}
		}
	}
	return limits, nil
}
