package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// The end-to-end tests run the real binary against the real broker and
// database that `scripts/services up` starts; `scripts/services env` gives
// KAFKA_BROKERS and DATABASE_URL. Without them the tests fail, never skip.

var (
	binary  string // the sinkworker binary under test
	brokers []string
	dbURL   string
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, "e2e", "README", func(e testenv.Env) {
		binary, brokers, dbURL = e.Binary, e.Brokers, e.DatabaseURL
	}))
}

// uniq is a name no other test or run uses.
func uniq(prefix string) string {
	return prefix + "_" + testenv.Suffix()
}

func db(t *testing.T) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(t.Context(), dbURL)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

func admin(t *testing.T) *kadm.Client {
	t.Helper()
	return testenv.Admin(t, brokers)
}

// newTopic creates a topic with the given partitions. After the test it
// is deleted with what the workers made of it: its dead-letter topic and
// its rows in sink_offsets.
func newTopic(t *testing.T, partitions int32) string {
	t.Helper()
	name := uniq("e2e")
	adm := admin(t)
	resp, err := adm.CreateTopic(t.Context(), partitions, 1, nil, name)
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	cleanTopic(t, name)
	return name
}

// cleanTopic deletes, after the test, topic, its dead-letter topic and its
// rows in sink_offsets (whatever the group), on the shared services.
func cleanTopic(t *testing.T, topic string) {
	t.Helper()
	adm := admin(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, topic, topic+".dlq")
		if conn, err := pgx.Connect(ctx, dbURL); err == nil {
			_, _ = conn.Exec(ctx, "DELETE FROM sink_offsets WHERE topic = $1", topic)
			conn.Close(ctx)
		}
	})
}

// dropTable drops the test's table after the test.
func dropTable(t *testing.T, pool *pgxpool.Pool, table string) {
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+pgx.Identifier{table}.Sanitize())
	})
}

// rec is one record the test produces: a nil value is a tombstone.
type rec struct {
	key   string
	value []byte
}

// workload is n records over keys user-0..user-(keys-1), about
// tombstonePct percent of them tombstones, deterministic for a seed.
func workload(n, keys, tombstonePct int, seed uint64) []rec {
	out := make([]rec, n)
	x := seed | 1
	next := func() uint64 { // xorshift: deterministic, fast, good enough for spreading keys
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return x
	}
	for i := range out {
		k := fmt.Sprintf("user-%d", next()%uint64(keys))
		if int(next()%100) < tombstonePct {
			out[i] = rec{key: k}
			continue
		}
		out[i] = rec{key: k, value: fmt.Appendf(nil,
			`{"user_id":%q,"event":"points-changed","seq":%d,"points":%d,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`,
			k, i, next()%10000)}
	}
	return out
}

// produce writes records in order and waits for every ack. Keys hash to
// partitions, so per key the production order is the offset order.
func produce(t *testing.T, topic string, recs []rec) {
	t.Helper()
	require.NoError(t, produceRecords(t.Context(), topic, recs))
}

// produceRecords is produce for any goroutine: it returns the first error
// instead of failing the test.
func produceRecords(ctx context.Context, topic string, recs []rec) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(50000))
	if err != nil {
		return err
	}
	defer cl.Close()
	var (
		mu    sync.Mutex
		first error
	)
	for _, r := range recs {
		cl.Produce(ctx, &kgo.Record{Key: []byte(r.key), Value: r.value}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return first
}

// upsertModel is what the upsert table must hold: the last value per key,
// tombstoned keys absent.
func upsertModel(recs []rec) map[string]string {
	m := map[string]string{}
	for _, r := range recs {
		if r.value == nil {
			delete(m, r.key)
		} else {
			m[r.key] = string(r.value)
		}
	}
	return m
}

// worker is one sinkworker process.
type worker struct {
	t      *testing.T
	member string
	cmd    *exec.Cmd
	logs   string // path of its stderr
	addr   string // its HTTP address
	exited chan struct{}
	err    error // exit status, after exited closes
}

// workerEnv is the environment of a worker process: the services, the
// test settings every worker shares, then env. Nothing else of the test's
// environment reaches it (testenv.ProcessEnv).
func workerEnv(member string, env map[string]string) []string {
	base := map[string]string{"KAFKA_BROKERS": strings.Join(brokers, ","), "DATABASE_URL": dbURL,
		"SINK_MEMBER": member, "HTTP_ADDR": "127.0.0.1:0", "BATCH_LINGER": "50ms"}
	if env["KAFKA_GROUP_PROTOCOL"] != "consumer" { // there the group's config decides, and the worker refuses it
		base["KAFKA_SESSION_TIMEOUT"] = "6s"
	}
	return testenv.ProcessEnv(base, env)
}

// startWorker runs the binary with workerEnv and waits for its HTTP
// listener.
func startWorker(t *testing.T, member string, env map[string]string) *worker {
	t.Helper()
	w := launch(t, member, env, binary)
	deadline := time.Now().Add(30 * time.Second)
	for w.addr == "" {
		select {
		case <-w.exited:
			t.Fatalf("worker %s exited at start-up (%v):\n%s", member, w.err, testenv.Tail(w.logs, 40))
		case <-time.After(20 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "worker %s did not start:\n%s", member, testenv.Tail(w.logs, 40))
		w.addr = testenv.LogField(w.logs, "http listening", "addr")
	}
	return w
}

func (w *worker) kill() {
	select {
	case <-w.exited:
	default:
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}

// stop sends SIGTERM and requires a clean exit 0.
func (w *worker) stop() {
	w.t.Helper()
	require.NoError(w.t, w.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-w.exited:
	case <-time.After(60 * time.Second):
		w.t.Fatalf("worker %s did not stop within 60s", w.member)
	}
	require.NoError(w.t, w.err, "worker %s exit status; log:\n%s", w.member, testenv.Tail(w.logs, 40))
}

// assigned scrapes the worker's sinkworker_assigned_partitions gauge.
func (w *worker) assigned() (int, error) {
	return testenv.AssignedPartitions(w.t.Context(), w.addr)
}

// endOffsets is the sum of the topic's partitions' end offsets.
func endOffsets(t *testing.T, topic string) int64 {
	t.Helper()
	ends, err := admin(t).ListEndOffsets(t.Context(), topic)
	require.NoError(t, err)
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum
}

// appliedOffsets is the sum of next_offset over the group's partitions of
// topic in sink_offsets.
func appliedOffsets(ctx context.Context, pool *pgxpool.Pool, group, topic string) (int64, error) {
	var sum int64
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(next_offset), 0) FROM sink_offsets
WHERE consumer_group = $1 AND topic = $2`, group, topic).Scan(&sum)
	return sum, err
}

// waitApplied waits until the database has applied every produced record.
func waitApplied(t *testing.T, pool *pgxpool.Pool, group, topic string, timeout time.Duration) {
	t.Helper()
	want := endOffsets(t, topic)
	var got int64
	require.Eventually(t, func() bool {
		var err error
		got, err = appliedOffsets(t.Context(), pool, group, topic)
		return err == nil && got == want
	}, timeout, 100*time.Millisecond, "applied offsets never reached the end offsets")
	_ = got
}
