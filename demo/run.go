package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// names are what the run creates. With a real broker or database they get
// a random suffix so a run never touches existing data.
type names struct {
	topic, dlq, table, group string
	shared                   bool // a real broker or database: names are suffixed and left in place
}

func newNames(shared bool) names {
	n := names{topic: "user-events", table: "users", group: "sinkworker-demo"}
	if shared {
		s := strings.ToLower(rand.Text()[:6])
		n = names{topic: n.topic + "-" + s, table: n.table + "_" + s, group: n.group + "-" + s, shared: true}
	}
	n.dlq = n.topic + ".dlq" // the workers' default DLQ_TOPIC
	return n
}

// run is one demo run: what it started, in order, and what it found.
type run struct {
	opts  Options
	out   io.Writer
	start time.Time
	names names
	res   Result

	tmp         string // worker logs; removed at the end
	brokers     []string
	dbURL       string
	pool        *pgxpool.Pool // the demo's own connections, application_name sinkworker-demo
	kcl         *kgo.Client
	adm         *kadm.Client
	codec       codec  // writes the records in Options.Format
	registryURL string // srfake's, for a typed format
	fleet       *fleet
	prod        *producer
	progress    *progress
	last        sample   // the latest sample while sinking
	final       sample   // taken after the fleet stopped
	cleanups    []func() // run last-in first-out by tearDown
}

// setUp starts or connects to the broker and the database, creates the
// topics and starts the workers, printing what it used.
func (r *run) setUp(ctx context.Context) error {
	r.names = newNames(len(r.opts.Brokers) > 0 || r.opts.DatabaseURL != "")
	r.progress = newProgress(r.out, r.opts.Interactive, r.start)
	r.res.Partitions = r.opts.Partitions
	r.res.Topic, r.res.Table, r.res.Group = r.names.topic, r.names.table, r.names.group
	o := r.opts
	r.say("sinkworker demo: %s user events as %s (%d bad, ~%g%% deletes) -> topic %s, %d partitions -> %d workers -> table %s",
		count(o.Events), o.Format, o.Bad, o.DeletePercent, r.names.topic, o.Partitions, o.Workers, r.names.table)
	tmp, err := os.MkdirTemp("", "sinkworker-demo-")
	if err != nil {
		return err
	}
	r.tmp = tmp
	r.defer_(func() { os.RemoveAll(tmp) })
	if err := r.setUpBroker(ctx); err != nil {
		return err
	}
	if err := r.setUpCodec(ctx); err != nil {
		return err
	}
	if err := r.setUpDatabase(ctx); err != nil {
		return err
	}
	r.fleet = newFleet(r.opts.WorkerBinary, r.tmp, r.workerEnv())
	r.defer_(func() { r.fleet.stop(15 * time.Second) })
	for i := range o.Workers {
		w, err := r.fleet.start(ctx, i)
		if err != nil {
			return err
		}
		r.say("  worker:     %s pid %d, metrics http://%s/metrics, log %s", w.name, w.pid, w.addr, w.logPath)
	}
	return nil
}

// setUpBroker starts kfake or connects to the given brokers, then creates
// the topic and its dead-letter topic with the same partition count.
func (r *run) setUpBroker(ctx context.Context) error {
	r.brokers = r.opts.Brokers
	if len(r.brokers) == 0 {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return fmt.Errorf("embedded broker: %w", err)
		}
		r.defer_(c.Close)
		r.brokers = c.ListenAddrs()
		r.res.Broker = "embedded kfake (in-process) on " + strings.Join(r.brokers, ",")
		r.say("  broker:     %s; set KAFKA_BROKERS to use a real one", r.res.Broker)
	} else {
		r.res.Broker = "KAFKA_BROKERS " + strings.Join(r.brokers, ",")
		r.say("  broker:     %s", r.res.Broker)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.MetadataMinAge(250*time.Millisecond))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	r.defer_(cl.Close)
	r.kcl, r.adm = cl, kadm.NewClient(cl)
	for _, t := range []string{r.names.topic, r.names.dlq} {
		resp, err := r.adm.CreateTopic(ctx, int32(r.opts.Partitions), -1, nil, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !(errors.Is(err, kerr.TopicAlreadyExists) && !r.names.shared) {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	return nil
}

// setUpDatabase starts a temporary PostgreSQL or uses the given one, and
// opens the demo's own small pool.
func (r *run) setUpDatabase(ctx context.Context) error {
	r.dbURL = r.opts.DatabaseURL
	if r.dbURL == "" {
		db, err := startTempDB(ctx, r.opts.Postgres, r.tmp)
		if err != nil {
			return err
		}
		r.defer_(db.stop)
		r.dbURL = db.url
		r.res.Postgres = db.desc
		r.say("  PostgreSQL: %s; set DATABASE_URL to use a real one", db.desc)
	} else {
		r.res.Postgres = "DATABASE_URL"
		r.say("  PostgreSQL: DATABASE_URL")
	}
	cfg, err := pgxpool.ParseConfig(r.dbURL)
	if err != nil {
		return fmt.Errorf("database URL: not a valid pgx connection string")
	}
	cfg.MaxConns = 2
	cfg.ConnConfig.RuntimeParams["application_name"] = "sinkworker-demo"
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = p.Ping(ctx)
	}
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	r.defer_(p.Close)
	r.pool = p
	return nil
}

// workerEnv is the workers' environment: WorkerEnv with the demo's
// settings after it (the last value of a variable wins).
func (r *run) workerEnv() []string {
	n := r.names
	env := append([]string(nil), r.opts.WorkerEnv...)
	if len(r.opts.Brokers) == 0 { // kfake: plaintext, no SASL
		env = append(env, "KAFKA_SASL_MECHANISM=", "KAFKA_TLS_ENABLED=false",
			"KAFKA_TLS_CA_FILE=", "KAFKA_TLS_CERT_FILE=", "KAFKA_TLS_KEY_FILE=")
	}
	// The registry is srfake or none: an exported SCHEMA_REGISTRY_* must
	// not reach the workers.
	env = append(env, "SCHEMA_REGISTRY_URL="+r.registryURL, "SCHEMA_REGISTRY_USERNAME=",
		"SCHEMA_REGISTRY_PASSWORD=", "SCHEMA_REGISTRY_TLS_CA_FILE=", "SINK_SCHEMA_EVOLUTION=none", "SINK_PRIMARY_KEY=")
	if r.opts.Format == FormatJSON {
		env = append(env, "SINK_MAPPING=jsonb", "SINK_KEY_FORMAT=json", "SINK_VALUE_FORMAT=json")
	} else { // no table yet: the workers create it from the value schema
		env = append(env, "SINK_MAPPING=columns", "SINK_KEY_FORMAT="+r.opts.Format, "SINK_VALUE_FORMAT="+r.opts.Format)
	}
	return append(env,
		"KAFKA_BROKERS="+strings.Join(r.brokers, ","),
		"KAFKA_TOPICS="+n.topic,
		"KAFKA_GROUP="+n.group,
		"KAFKA_START_OFFSET=earliest",
		"KAFKA_SESSION_TIMEOUT=6s",
		"DATABASE_URL="+r.dbURL,
		"SINK_TABLE_MAP="+n.topic+"="+n.table,
		"SINK_MODE=upsert",
		"SINK_DELETE_ON_TOMBSTONE=true",
		"ERROR_POLICY=dlq",
		"DLQ_TOPIC=",
		"HTTP_ADDR=127.0.0.1:0",
		"SHUTDOWN_TIMEOUT=10s",
		"SINK_OFFSETS_TABLE=sink_offsets",
		// info, not warn: the "http listening" line that gives each
		// worker's metrics address is logged at info. Logs go to files.
		"LOG_LEVEL=info",
		"LOG_FORMAT=json",
	)
}

// defer_ registers f to run at tearDown, after everything registered later.
func (r *run) defer_(f func()) { r.cleanups = append(r.cleanups, f) }

// tearDown stops everything setUp started, newest first, and removes the
// temporary directories.
func (r *run) tearDown() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}

// say prints one line, above the progress line when it is live.
func (r *run) say(format string, args ...any) { r.progress.say(fmt.Sprintf(format, args...)) }

// elapsed is the time since the run started, for event lines.
func (r *run) elapsed() string { return fmt.Sprintf("[%5.1fs]", time.Since(r.start).Seconds()) }

// count formats n with thousands separators.
func count[T ~int | ~int64](n T) string {
	s := fmt.Sprint(int64(n))
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
