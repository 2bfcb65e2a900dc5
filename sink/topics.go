package sink

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/sinkworker/sinkworker/sink/dlq"
	"github.com/sinkworker/sinkworker/sink/postgres"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// forTopics is c with topics as its topics: the stage configurations it
// builds name their tables.
func (c Config) forTopics(topics ...string) Config {
	c.Topics = topics
	return c
}

// topicsOf lists the topics of an assignment.
func topicsOf(assignment map[string][]int32) []string {
	return slices.Sorted(maps.Keys(assignment))
}

// prepareTopics readies topics the worker has not sunk before, as start-up
// does for KAFKA_TOPICS: under KAFKA_TOPICS_REGEX a topic is known only
// once it is assigned. Each table is named (SINK_TABLE_MAP,
// SINK_TABLE_FORMAT) and checked against the other topics' (two topics
// in one upsert table are a bad setting), created if missing (jsonb
// mapping) or read from the catalog (columns mapping), and the
// dead-letter topic created. Called with w.mu held.
func (w *Worker) prepareTopics(ctx context.Context, topics []string) error {
	var fresh []string
	for _, t := range topics {
		if !w.prepared[t] {
			fresh = append(fresh, t)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	for _, t := range fresh {
		if _, mapped := w.cfg.TableMap[t]; !mapped && w.cfg.TableFormat != "" {
			if _, err := postgres.ParseIdentifier(expandTableFormat(w.cfg.TableFormat, t)); err != nil {
				return fmt.Errorf("%w: SINK_TABLE_FORMAT gives topic %q no table name: %v", ErrConfig, t, err)
			}
		}
		if err := w.claimTable(t); err != nil {
			return err
		}
	}
	cols, err := postgres.Prepare(ctx, w.pool, w.cfg.forTopics(fresh...).Postgres(), w.log)
	if errors.Is(err, postgres.ErrNoPrimaryKey) {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err != nil {
		return err
	}
	if w.cfg.ErrorPolicy == "dlq" {
		if err := dlq.EnsureTopics(ctx, w.cl, w.log, fresh, w.cfg.DLQTopic); err != nil {
			return err
		}
	}
	if w.columns == nil {
		w.columns = map[string]*postgres.Columns{}
	}
	maps.Copy(w.columns, cols)
	for _, t := range fresh {
		w.prepared[t] = true
		w.metrics.OutOfRange.WithLabelValues(t)
		w.metrics.ColumnsAdded.WithLabelValues(t)
	}
	w.log.Info("new topics", "topics", fresh)
	return nil
}

// claimTable notes topic's table; in upsert mode a table another topic
// sinks into already is a bad setting, as Validate says for KAFKA_TOPICS.
func (w *Worker) claimTable(topic string) error {
	table := w.cfg.Table(topic).Sanitize()
	if other, ok := w.tables[table]; ok && other != topic && w.cfg.Mode == ModeUpsert {
		return fmt.Errorf("%w: topics %q and %q both sink into table %s with SINK_MODE=upsert, where their keys "+
			"would overwrite each other: map one of them to another table (SINK_TABLE_MAP, SINK_TABLE_FORMAT)",
			ErrConfig, other, topic, table)
	}
	w.tables[table] = topic
	return nil
}

// ResolveTopics returns c with Topics set to the topics KAFKA_TOPICS_REGEX
// matches now (dead-letter and internal topics left out), for the
// commands that work on a known set of topics (audit, offsets reset,
// redrive); c as it is without a regex.
func (c Config) ResolveTopics(ctx context.Context) (Config, error) {
	if c.TopicsRegex == "" {
		return c, nil
	}
	opts, err := c.ClientOpts()
	if err != nil {
		return c, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return c, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	listed, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		return c, fmt.Errorf("list topics for KAFKA_TOPICS_REGEX: %w", err)
	}
	match, skip := regexp.MustCompile(c.TopicsPattern()), regexp.MustCompile(dlqPattern(c.DLQTopic))
	for _, t := range listed.Names() {
		if match.MatchString(t) && !skip.MatchString(t) {
			c.Topics = append(c.Topics, t)
		}
	}
	slices.Sort(c.Topics)
	return c, nil
}
