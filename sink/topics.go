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
// SINK_TABLE_FORMAT) and checked against the other topics' (claimTables),
// created if missing (jsonb mapping) or read from the catalog (columns
// mapping), and the dead-letter topic created. Called with w.mu held.
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
	if err := w.claimTables(ctx, fresh); err != nil {
		return err
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

// claimTables notes the tables of fresh, topics new to the worker. In
// upsert mode a table another topic sinks into is a bad setting (ErrConfig),
// the rule Validate applies to KAFKA_TOPICS at start-up; here the other
// topics are those the worker has readied and, under KAFKA_TOPICS_REGEX,
// every topic the pattern matches now, listed from the brokers: the two
// topics may be assigned to different members, and each member that is
// assigned one of them stops.
func (w *Worker) claimTables(ctx context.Context, fresh []string) error {
	var matching []string
	if w.cfg.Mode == ModeUpsert && w.cfg.TopicsRegex != "" {
		listed, err := kadm.NewClient(w.cl).ListTopics(ctx)
		if err != nil {
			return fmt.Errorf("list topics for KAFKA_TOPICS_REGEX: %w", err)
		}
		matching = w.cfg.matching(listed.Names())
	}
	for _, topic := range fresh {
		table, err := w.cfg.tableName(topic)
		if err != nil {
			return err
		}
		if w.cfg.Mode == ModeUpsert {
			others := matching
			if t, ok := w.tables[table]; ok {
				others = append([]string{t}, matching...)
			}
			for _, other := range others {
				if name, err := w.cfg.tableName(other); err == nil && name == table && other != topic {
					return fmt.Errorf("%w: topics %q and %q both sink into table %s with SINK_MODE=upsert, where their keys "+
						"would overwrite each other: map one of them to another table (SINK_TABLE_MAP, SINK_TABLE_FORMAT)",
						ErrConfig, other, topic, table)
				}
			}
		}
		w.tables[table] = topic
	}
	return nil
}

// tableName is topic's table, quoted; a table SINK_TABLE_FORMAT gives no
// valid name is a bad setting (ErrConfig).
func (c Config) tableName(topic string) (string, error) {
	if _, mapped := c.TableMap[topic]; !mapped && c.TableFormat != "" {
		if _, err := postgres.ParseIdentifier(expandTableFormat(c.TableFormat, topic)); err != nil {
			return "", fmt.Errorf("%w: SINK_TABLE_FORMAT gives topic %q no table name: %v", ErrConfig, topic, err)
		}
	}
	return c.Table(topic).Sanitize(), nil
}

// matching is the names KAFKA_TOPICS_REGEX matches whole, without the
// dead-letter topics, sorted.
func (c Config) matching(names []string) []string {
	match, skip := regexp.MustCompile(c.TopicsPattern()), regexp.MustCompile(dlqPattern(c.DLQTopic))
	var out []string
	for _, t := range names {
		if match.MatchString(t) && !skip.MatchString(t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
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
	c.Topics = c.matching(listed.Names())
	return c, nil
}
