package sink

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sinkworker/sinkworker/batch"
	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/pool"
)

// These tests run the Worker in-process (so -race sees its goroutines)
// against the real PostgreSQL and a kfake broker, which makes faults easy
// to provoke. The end-to-end suite in cmd/sinkworker uses the real broker.

func wtName(prefix string) string { return prefix + "_" + testenv.Suffix() }

// wtSetup starts a kfake cluster with one topic and returns a Config for it
// whose table and group are the test's own, and a pool for checks.
func wtSetup(t *testing.T, partitions int32, opts ...kfake.Opt) (*kfake.Cluster, Config, *pgxpool.Pool) {
	t.Helper()
	topic := wtName("wt")
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cfg := Config{
		Brokers: c.ListenAddrs(), Topics: []string{topic}, Group: wtName("g"), StartOffset: "earliest", IsolationLevel: IsolationReadCommitted,
		SessionTimeout: 6 * time.Second, GroupProtocol: GroupProtocolClassic, DatabaseURL: testenv.DatabaseURL(t), TableMap: map[string]string{topic: wtName("t")},
		Mode: ModeInsert, Mapping: "jsonb", DeleteOnTombstone: true, OffsetsTable: "sink_offsets", Member: "wt",
		MaxRecordBytes: 4 << 20, BufferMaxBytes: 64 << 20, FetchMaxPartitionBytes: 256 << 10,
		Batch: batch.Policy{MaxRecords: 100, MaxBytes: 1 << 20, Linger: 20 * time.Millisecond},
		Pool:  pool.Config{MaxConns: 16}, ErrorPolicy: "dlq", ShutdownTimeout: 10 * time.Second, TxIdleTimeout: time.Minute, TxTimeout: time.Minute,
		LogLevel: "info", LogFormat: "json",
	}
	db, err := pgxpool.New(t.Context(), cfg.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = db.Exec(context.Background(), "DROP TABLE IF EXISTS "+cfg.Table(topic).Sanitize())
		_, _ = db.Exec(context.Background(), "DELETE FROM sink_offsets WHERE consumer_group = $1", cfg.Group)
		db.Close()
	})
	return c, cfg, db
}

// wtRecords is the worker's sinkworker_records_total for its topic and
// outcome, read from its registry (0 while the series does not exist).
func wtRecords(t *testing.T, w *Worker, outcome string) float64 {
	t.Helper()
	fams, err := w.metrics.Registry.Gather()
	require.NoError(t, err)
	var total float64
	for _, f := range fams {
		if f.GetName() != "sinkworker_records_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// wtDeadLetters is the number of records in the kfake cluster's dead-letter
// topic for the config's topic.
func wtDeadLetters(t *testing.T, c *kfake.Cluster, cfg Config) int64 {
	t.Helper()
	ends, err := wtAdmin(t, c).ListEndOffsets(t.Context(), cfg.DLQTopicFor(cfg.Topics[0]))
	require.NoError(t, err)
	var dead int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			dead += o.Offset
		}
	})
	return dead
}

// wtProduce writes n records to each partition of the topic. Keys are the
// partition's own, as with Kafka's key partitioner: a key shared by two
// partitions would make their upserts wait on each other's row locks.
func wtProduce(t *testing.T, brokers []string, topic string, partitions int32, n int) {
	t.Helper()
	wtProduceRange(t, brokers, topic, partitions, 0, n)
}

// wtProduceRange is wtProduce of the records from..to-1 of each partition.
func wtProduceRange(t *testing.T, brokers []string, topic string, partitions int32, from, to int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	for p := range partitions {
		for i := from; i < to; i++ {
			cl.Produce(t.Context(), &kgo.Record{Topic: topic, Partition: p,
				Key: fmt.Appendf(nil, "p%d-k%d", p, i), Value: fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i)}, nil)
		}
	}
	require.NoError(t, cl.Flush(t.Context()))
}

// wtRun runs a Worker until the returned stop is called; stop returns Run's
// error.
func wtRun(t *testing.T, cfg Config) (*Worker, func() error) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	w, err := New(t.Context(), cfg, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			return fmt.Errorf("Run did not return within 60s")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return w, stop
}

func wtNextOffset(t *testing.T, db *pgxpool.Pool, cfg Config, partition int32) int64 {
	t.Helper()
	var next int64
	err := db.QueryRow(t.Context(), `SELECT coalesce(max(next_offset), 0) FROM sink_offsets
WHERE consumer_group = $1 AND topic = $2 AND partition = $3`, cfg.Group, cfg.Topics[0], partition).Scan(&next)
	require.NoError(t, err)
	return next
}

// TestSlowPartitionDoesNotStallOthers holds partition 0's offsets row
// locked, so its goroutine blocks inside its first transaction. Partition 1
// must still drain completely, partition 0's queue must stay bounded
// (fetching paused, not everything buffered), and once the lock goes
// partition 0 drains too.
func TestSlowPartitionDoesNotStallOthers(t *testing.T) {
	const perPartition = 20_000
	c, cfg, db := wtSetup(t, 2)
	topic := cfg.Topics[0]
	wtProduce(t, c.ListenAddrs(), topic, 2, perPartition)
	require.NoError(t, EnsureTables(t.Context(), db, cfg))

	// Hold partition 0's row lock from an open transaction.
	_, err := db.Exec(t.Context(), `INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset)
VALUES ($1, $2, 0, 0)`, cfg.Group, topic)
	require.NoError(t, err)
	blocker, err := db.Begin(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = blocker.Rollback(context.Background()) }) // before the pool closes
	_, err = blocker.Exec(t.Context(), `SELECT 1 FROM sink_offsets WHERE consumer_group = $1 AND topic = $2
AND partition = 0 FOR UPDATE`, cfg.Group, topic)
	require.NoError(t, err)

	w, stop := wtRun(t, cfg)
	require.Eventually(t, func() bool { return wtNextOffset(t, db, cfg, 1) == perPartition },
		60*time.Second, 50*time.Millisecond, "partition 1 must drain while partition 0 is stuck")

	w.mu.Lock()
	p0 := w.parts[topic][0]
	w.mu.Unlock()
	require.NotNil(t, p0)
	p0.mu.Lock()
	queued, paused := len(p0.queue), p0.paused
	p0.mu.Unlock()
	assert.True(t, paused, "partition 0's fetching is paused")
	assert.Less(t, queued, perPartition/2, "partition 0 buffers a bounded number of records, not its whole backlog")
	assert.Zero(t, wtNextOffset(t, db, cfg, 0))

	require.NoError(t, blocker.Rollback(t.Context()))
	require.Eventually(t, func() bool { return wtNextOffset(t, db, cfg, 0) == perPartition },
		60*time.Second, 50*time.Millisecond, "partition 0 drains once unblocked")
	require.NoError(t, stop())

	var rows int
	require.NoError(t, db.QueryRow(t.Context(), "SELECT count(*) FROM "+cfg.Table(topic).Sanitize()).Scan(&rows))
	assert.Equal(t, 2*perPartition, rows)
}

// TestDatabaseOffsetsWin: Kafka's committed offsets are only a copy. With
// Kafka's copy moved to the end of the log (a manual reset, or a restored
// database), the worker still starts where the database says and loses
// nothing; and after a clean stop Kafka's copy equals the database's.
func TestDatabaseOffsetsWin(t *testing.T) {
	const perPartition = 3_000
	c, cfg, db := wtSetup(t, 2)
	topic := cfg.Topics[0]
	wtProduce(t, c.ListenAddrs(), topic, 2, perPartition)

	_, stop := wtRun(t, cfg)
	require.Eventually(t, func() bool {
		return wtNextOffset(t, db, cfg, 0) == perPartition && wtNextOffset(t, db, cfg, 1) == perPartition
	}, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, stop())

	adm := wtAdmin(t, c)
	committed, err := adm.FetchOffsets(t.Context(), cfg.Group)
	require.NoError(t, err)
	for p := range int32(2) {
		o, ok := committed.Lookup(topic, p)
		require.True(t, ok, "partition %d committed to Kafka on shutdown", p)
		assert.EqualValues(t, perPartition, o.At, "Kafka's copy equals the database's after a clean stop")
	}

	// Rewind the database by deleting half the rows and moving next_offset
	// back (a restore from backup), and move Kafka's copy to the end.
	_, err = db.Exec(t.Context(), "DELETE FROM "+cfg.Table(topic).Sanitize()+" WHERE kafka_offset >= 1000")
	require.NoError(t, err)
	_, err = db.Exec(t.Context(), `UPDATE sink_offsets SET next_offset = 1000 WHERE consumer_group = $1 AND topic = $2`,
		cfg.Group, topic)
	require.NoError(t, err)
	wtProduce(t, c.ListenAddrs(), topic, 2, 500) // more records after the "reset"
	ends := kadm.Offsets{}
	ends.Add(kadm.Offset{Topic: topic, Partition: 0, At: perPartition + 500})
	ends.Add(kadm.Offset{Topic: topic, Partition: 1, At: perPartition + 500})
	_, err = adm.CommitOffsets(t.Context(), cfg.Group, ends)
	require.NoError(t, err)

	w, stop := wtRun(t, cfg)
	require.Eventually(t, func() bool {
		return wtNextOffset(t, db, cfg, 0) == perPartition+500 && wtNextOffset(t, db, cfg, 1) == perPartition+500
	}, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, stop())
	var rows int
	require.NoError(t, db.QueryRow(t.Context(), "SELECT count(*) FROM "+cfg.Table(topic).Sanitize()).Scan(&rows))
	assert.Equal(t, 2*(perPartition+500), rows, "every record applied once, restarting from the database's offsets")
	// The primary key makes the row count exact whatever happened; these
	// show what the worker did: it wrote exactly the records after the
	// database's offsets and fetched nothing below them.
	assert.EqualValues(t, 2*(perPartition+500-1000), wtRecords(t, w, "written"), "records written by the second run")
	assert.Zero(t, wtRecords(t, w, "already_applied"), "records fetched below the database's offsets")
	assert.Zero(t, wtDeadLetters(t, c, cfg), "dead letters")
}

// TestKafkaCommitFailuresLoseNothing: every OffsetCommit fails; the
// database still has every record once, and a restarted worker resumes
// from the database instead of replaying from the start.
func TestKafkaCommitFailuresLoseNothing(t *testing.T) {
	const perPartition = 2_000
	c, cfg, db := wtSetup(t, 2)
	topic := cfg.Topics[0]
	c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.OffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = 16 // NOT_COORDINATOR... any error: the commit is refused
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	wtProduce(t, c.ListenAddrs(), topic, 2, perPartition)
	w, stop := wtRun(t, cfg)
	require.Eventually(t, func() bool {
		return wtNextOffset(t, db, cfg, 0) == perPartition && wtNextOffset(t, db, cfg, 1) == perPartition
	}, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, stop())
	assert.EqualValues(t, 2*perPartition, wtRecords(t, w, "written"), "the first run writes every record")

	// The second run finds no offset in Kafka (every commit failed): it must
	// start at the database's, not at KAFKA_START_OFFSET=earliest. More
	// records after the first run show that it consumed at all.
	wtProduce(t, c.ListenAddrs(), topic, 2, 100)
	w, stop = wtRun(t, cfg)
	require.Eventually(t, func() bool {
		return wtNextOffset(t, db, cfg, 0) == perPartition+100 && wtNextOffset(t, db, cfg, 1) == perPartition+100
	}, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, stop())
	assert.EqualValues(t, 2*100, wtRecords(t, w, "written"), "the second run writes only the new records")
	assert.Zero(t, wtRecords(t, w, "already_applied"), "the second run fetched nothing the first had applied")
	assert.Zero(t, wtDeadLetters(t, c, cfg), "dead letters")
	var rows int
	require.NoError(t, db.QueryRow(t.Context(), "SELECT count(*) FROM "+cfg.Table(topic).Sanitize()).Scan(&rows))
	assert.Equal(t, 2*(perPartition+100), rows)
}

func wtAdmin(t *testing.T, c *kfake.Cluster) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// TestDeadLetterWaitsForAck: while the dead-letter topic refuses produces,
// a pending bad record holds its partition's offset (nothing past it is
// committed and nothing is skipped); once produces succeed it is
// dead-lettered and the partition moves on. The other partition is not
// held up.
func TestDeadLetterWaitsForAck(t *testing.T) {
	const perPartition = 1_000
	c, cfg, db := wtSetup(t, 2)
	cfg.Mode = ModeUpsert
	topic := cfg.Topics[0]
	wtProduce(t, c.ListenAddrs(), topic, 2, perPartition/2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	bad := &kgo.Record{Topic: topic, Partition: 0, Key: []byte("bad"), Value: []byte(`{"truncated":`)}
	require.NoError(t, cl.ProduceSync(t.Context(), bad).FirstErr())
	cl.Close()
	wtProduceRange(t, c.ListenAddrs(), topic, 2, perPartition/2, perPartition)

	var refused atomic.Int64
	var refusing atomic.Bool
	refusing.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !refusing.Load() {
			return nil, nil, false
		}
		refused.Add(1)
		r := req.(*kmsg.ProduceRequest)
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code // retriable, like an under-replicated DLQ
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	_, stop := wtRun(t, cfg)
	require.Eventually(t, func() bool { return wtNextOffset(t, db, cfg, 1) == perPartition+0 },
		30*time.Second, 20*time.Millisecond, "partition 1 is not held up")
	require.Eventually(t, func() bool { return refused.Load() > 3 }, 30*time.Second, 20*time.Millisecond)
	assert.LessOrEqual(t, wtNextOffset(t, db, cfg, 0), bad.Offset, "no offset past the bad record before its dead-letter is acknowledged")

	refusing.Store(false)
	require.Eventually(t, func() bool { return wtNextOffset(t, db, cfg, 0) == perPartition+1 },
		60*time.Second, 20*time.Millisecond, "partition 0 moves on once the dead-letter is acknowledged")
	require.NoError(t, stop())

	assert.EqualValues(t, 1, wtDeadLetters(t, c, cfg), "the bad record is in the dead-letter topic once")

	// Nothing skipped: every good record's key (each its own) holds its
	// value, and the bad record's key has no row.
	rows, err := db.Query(t.Context(), "SELECT key, value::text FROM "+cfg.Table(topic).Sanitize())
	require.NoError(t, err)
	got := map[string]string{}
	var k, v string
	_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error { got[k] = v; return nil })
	require.NoError(t, err)
	want := map[string]string{}
	for p := range 2 {
		for i := range perPartition {
			want[fmt.Sprintf("p%d-k%d", p, i)] = fmt.Sprintf(`{"i": %d, "p": %d}`, i, p)
		}
	}
	assert.Equal(t, want, got, "the table holds every good record and not the bad one")
}

// TestForgottenMemberLetsGo is a member whose session the coordinator
// expired while the member could not heartbeat (KIP-848; in the chaos suite
// a zombie resumed during a broker restart). Its commits come back
// UNKNOWN_MEMBER_ID while its client still believes in its assignment: the
// worker must abandon its partitions and close their connections at once
// (I4: the partitions belong to other members now), and take them up again
// when the client rejoins, losing and doubling nothing. A busy member learns
// it from the commit of its next batch; an idle one, with nothing to
// commit, from the committer's probe (old code: it kept its partitions and
// connections until a heartbeat got through).
func TestForgottenMemberLetsGo(t *testing.T) {
	for _, busy := range []bool{true, false} {
		t.Run(map[bool]string{true: "busy", false: "idle"}[busy], func(t *testing.T) { testForgottenMember(t, busy) })
	}
}

func testForgottenMember(t *testing.T, busy bool) {
	const partitions = 2
	c, cfg, db := wtSetup(t, partitions, kfake.BrokerConfigs(map[string]string{
		"group.consumer.heartbeat.interval.ms": "500",
		"group.consumer.session.timeout.ms":    "3000",
	}))
	cfg.GroupProtocol = GroupProtocolConsumer
	topic := cfg.Topics[0]
	// Heartbeats answered "coordinator loading": retried, never seen by the
	// coordinator. Commits too, until the session has expired: kfake (unlike
	// Kafka's KIP-848 coordinator) keeps a member's session alive on its
	// commits, and the committer's probe would.
	var starve, starveCommits atomic.Bool
	c.ControlKey(int16(kmsg.ConsumerGroupHeartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !starve.Load() {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !starveCommits.Load() {
			return nil, nil, false
		}
		commit := req.(*kmsg.OffsetCommitRequest)
		resp := commit.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range commit.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	landed := func(n int64) func() bool {
		return func() bool {
			for p := range int32(partitions) {
				if wtNextOffset(t, db, cfg, p) != n {
					return false
				}
			}
			return true
		}
	}
	connections := func() int {
		var n int
		require.NoError(t, db.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
			ApplicationName(cfg.Group, cfg.Member)).Scan(&n))
		return n
	}
	wtProduceRange(t, c.ListenAddrs(), topic, partitions, 0, 100)
	w, stop := wtRun(t, cfg)
	require.Eventually(t, landed(100), 30*time.Second, 20*time.Millisecond)
	require.Positive(t, connections())
	require.Eventually(t, func() bool { // Kafka's copy too: nothing left to commit
		committed, err := wtAdmin(t, c).FetchOffsets(t.Context(), cfg.Group)
		if err != nil {
			return false
		}
		for p := range int32(partitions) {
			if o, ok := committed.Lookup(topic, p); !ok || o.At != 100 {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond)

	starve.Store(true)
	starveCommits.Store(true)
	time.Sleep(4 * time.Second) // past the session timeout: the coordinator forgets the member
	starveCommits.Store(false)  // loaded: commits are answered, heartbeats still back off
	if busy {
		wtProduceRange(t, c.ListenAddrs(), topic, partitions, 100, 200)
	}
	assert.Eventually(t, func() bool { return w.count() == 0 && connections() == 0 }, 20*time.Second, 50*time.Millisecond,
		"a forgotten member still runs %d partitions over %d connections", w.count(), connections())

	starve.Store(false) // the next heartbeat hears UNKNOWN_MEMBER_ID; the client rejoins
	if !busy {
		wtProduceRange(t, c.ListenAddrs(), topic, partitions, 100, 200)
	}
	wtProduceRange(t, c.ListenAddrs(), topic, partitions, 200, 300)
	require.Eventually(t, landed(300), 30*time.Second, 20*time.Millisecond)
	require.NoError(t, stop())
	var rows int
	require.NoError(t, db.QueryRow(t.Context(), "SELECT count(*) FROM "+cfg.Table(topic).Sanitize()).Scan(&rows))
	assert.Equal(t, partitions*300, rows, "one row per record")
	assert.Zero(t, wtDeadLetters(t, c, cfg), "dead letters")
}
