package main

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
)

// debeziumVersion is the io.debezium:debezium-connector-jdbc plugin fetched
// from Maven Central (3.6.0.Final is built against Kafka 4.3.0; the runtime
// in bench/connect/pom.xml is connect-runtime 4.3.1).
const debeziumVersion = "3.6.0.Final"

// connectDir prepares (once, cached) Kafka Connect's class path and the
// Debezium JDBC sink plugin: <cache>/lib and <cache>/plugins.
func (b *bench) connectDir(ctx context.Context) (string, error) {
	home, _ := os.UserHomeDir()
	dir := filepath.Join(home, ".cache", "sinkworker-bench", "connect-"+debeziumVersion)
	lib, plugins := filepath.Join(dir, "lib"), filepath.Join(dir, "plugins")
	pom := filepath.Join(b.s.root, "bench", "connect", "pom.xml")
	if _, err := os.Stat(filepath.Join(lib, ".done")); err != nil {
		logf("  resolving Kafka Connect jars with Maven (bench/connect/pom.xml) into %s ...", lib)
		_ = os.RemoveAll(lib)
		if err := mvn(ctx, pom, "dependency:copy-dependencies", "-DoutputDirectory="+lib, "-DincludeScope=runtime"); err != nil {
			return "", err
		}
		_ = os.WriteFile(filepath.Join(lib, ".done"), nil, 0o644)
	}
	if _, err := os.Stat(filepath.Join(plugins, ".done")); err != nil {
		logf("  fetching io.debezium:debezium-connector-jdbc:%s:tar.gz:plugin ...", debeziumVersion)
		dl := filepath.Join(dir, "download")
		if err := mvn(ctx, pom, "dependency:copy", "-Dartifact=io.debezium:debezium-connector-jdbc:"+debeziumVersion+":tar.gz:plugin",
			"-DoutputDirectory="+dl); err != nil {
			return "", err
		}
		_ = os.RemoveAll(plugins)
		if err := os.MkdirAll(plugins, 0o755); err != nil {
			return "", err
		}
		tgz := filepath.Join(dl, "debezium-connector-jdbc-"+debeziumVersion+"-plugin.tar.gz")
		if out, err := exec.CommandContext(ctx, "tar", "xzf", tgz, "-C", plugins).CombinedOutput(); err != nil {
			return "", fmt.Errorf("unpack %s: %v: %s", tgz, err, out)
		}
		_ = os.WriteFile(filepath.Join(plugins, ".done"), nil, 0o644)
	}
	return dir, nil
}

func mvn(ctx context.Context, pom string, args ...string) error {
	cmd := exec.CommandContext(ctx, "mvn", append([]string{"-q", "-B", "-f", pom}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mvn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// dbzResult is one Kafka Connect + Debezium JDBC sink run.
type dbzResult struct {
	name      string // defaults | tuned
	settings  string
	parts     int
	records   int
	total     time.Duration // Connect start to every row in place
	firstRow  time.Duration // Connect start to the first row seen
	peakConns int
	cpu       time.Duration
	maxRSS    int64
	attempts  int
	finished  bool
	rowsAtEnd int64
}

func (r dbzResult) rate() float64 { return rate(int64(r.records), r.total) }

// steadyRate excludes the JVM's and connector's start-up.
func (r dbzResult) steadyRate() float64 {
	if r.total-r.firstRow < time.Second {
		return r.rate() // too short to tell start-up from work
	}
	return rate(int64(r.records), r.total-r.firstRow)
}

// dbzTarget is what one Debezium run writes and when it is done: the
// connector's write settings, the fresh table it is given, and what that
// table holds once every record is in.
type dbzTarget struct {
	parts, records int
	// write is the connector's insert.mode, primary.key.* and
	// schema.evolution properties.
	write []string
	// create makes the fresh table before Connect starts.
	create func(ctx context.Context, table string) error
	// offset is the column that holds a row's Kafka offset; the run is
	// done when the table has wantRows rows whose offsets sum to wantSum.
	offset   string
	wantRows int
	wantSum  int64
	// check, unless nil, inspects the finished table (not timed).
	check func(ctx context.Context, table string) error
	// timeout gives up on the run; 0: -timeout.
	timeout time.Duration
}

// upsertTarget is the debezium scenario's: the envelope topic of l's
// records, upsert by record key into a table of the sink's shape, done
// when it holds every key at its highest offset.
func (b *bench) upsertTarget(topic string, l *dataset.Layout) dbzTarget {
	rows, sum := l.Expected(b.d, false)
	return dbzTarget{
		parts: l.Parts, records: b.d.N,
		write: []string{"insert.mode=upsert", "primary.key.mode=record_key", "delete.enabled=true", "schema.evolution=basic"},
		create: func(ctx context.Context, table string) error {
			return sinkdb.EnsureTable(ctx, b.s.db, topic, table, false)
		},
		offset: "kafka_offset", wantRows: rows, wantSum: sum,
	}
}

// runDebezium runs Connect standalone with the Debezium JDBC sink on topic
// into a fresh table t creates, until the table holds what t wants.
func (b *bench) runDebezium(ctx context.Context, dir, topic string, t dbzTarget, tuned bool) (dbzResult, error) {
	s := b.s
	r := dbzResult{name: "defaults", parts: t.parts, records: t.records}
	_, name, table := b.fresh()
	run := filepath.Join(b.tmp, name)
	if err := os.MkdirAll(run, 0o755); err != nil {
		return r, err
	}
	defer b.forget(table, "connect-"+name) // Connect's consumer group
	if err := t.create(ctx, table); err != nil {
		return r, err
	}
	u, err := url.Parse(s.dsn)
	if err != nil {
		return r, fmt.Errorf("DATABASE_URL must be a URL for the JDBC url: %w", err)
	}
	pass, _ := u.User.Password()
	jdbc := fmt.Sprintf("jdbc:postgresql://%s%s?ApplicationName=%s", u.Host, u.Path, "bench-dbz/"+name)
	if sm := u.Query().Get("sslmode"); sm != "" {
		jdbc += "&sslmode=" + sm
	}
	worker := []string{
		"bootstrap.servers=" + strings.Join(s.brokers, ","),
		"key.converter=org.apache.kafka.connect.json.JsonConverter", "key.converter.schemas.enable=true",
		"value.converter=org.apache.kafka.connect.json.JsonConverter", "value.converter.schemas.enable=true",
		"offset.storage.file.filename=" + filepath.Join(run, "offsets"),
		"offset.flush.interval.ms=1000",
		"plugin.path=" + filepath.Join(dir, "plugins"),
		"listeners=http://127.0.0.1:0",
	}
	conn := []string{
		"name=" + name, "connector.class=io.debezium.connector.jdbc.JdbcSinkConnector", "topics=" + topic,
		"connection.url=" + jdbc, "connection.username=" + u.User.Username(), "connection.password=" + pass,
		"collection.name.format=" + table,
	}
	conn = append(conn, t.write...)
	if tuned {
		r.name = "tuned"
		tune := []string{"tasks.max=" + strconv.Itoa(t.parts), "batch.size=5000", "connection.pool.min_size=1",
			"connection.pool.max_size=2"}
		conn = append(conn, tune...)
		worker = append(worker, "consumer.max.poll.records=5000", "consumer.fetch.min.bytes=1")
		r.settings = strings.Join(tune, ", ") + ", worker consumer.max.poll.records=5000"
	} else {
		r.settings = "shipped defaults (tasks.max=1, batch.size=500, pool 5/32), worker max.poll.records=500"
	}
	log4j := filepath.Join(run, "log4j2.xml")
	files := map[string]string{
		"worker.properties":    strings.Join(worker, "\n") + "\n",
		"connector.properties": strings.Join(conn, "\n") + "\n",
		"log4j2.xml": `<Configuration status="warn"><Appenders><Console name="e" target="SYSTEM_ERR"><PatternLayout pattern="%d %p %c{1} %m%n"/></Console></Appenders>` +
			`<Loggers><Root level="warn"><AppenderRef ref="e"/></Root></Loggers></Configuration>` + "\n",
	}
	for f, body := range files {
		if err := os.WriteFile(filepath.Join(run, f), []byte(body), 0o600); err != nil {
			return r, err
		}
	}
	if _, err := s.db.Exec(ctx, "CHECKPOINT"); err != nil {
		return r, err
	}
	java := "java"
	args := []string{"-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-Dlog4j2.configurationFile=" + log4j,
		"-cp", filepath.Join(dir, "lib") + "/*", "org.apache.kafka.connect.cli.ConnectStandalone",
		filepath.Join(run, "worker.properties"), filepath.Join(run, "connector.properties")}
	logPath := filepath.Join(run, "connect.log")
	start := time.Now()
	p, err := proc.Start(java, args, os.Environ(), logPath)
	if err != nil {
		return r, err
	}
	defer p.Kill()
	wantRows, wantSum := t.wantRows, t.wantSum
	timeout := cmp.Or(t.timeout, b.o.timeout)
	q := `SELECT count(*), coalesce(sum(` + pgx.Identifier{t.offset}.Sanitize() + `), 0)::bigint FROM ` + pgx.Identifier{table}.Sanitize()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastPrint := time.Now()
	for {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case now := <-tick.C:
			if p.Done() {
				return r, fmt.Errorf("Kafka Connect exited early (%s)\n%s", p.Cmd.ProcessState, p.Tail(30))
			}
			var rows, sumOff int64
			if err := s.db.QueryRow(ctx, q).Scan(&rows, &sumOff); err != nil {
				return r, err
			}
			if c, err := sinkdb.Conns(ctx, s.db, "bench-dbz/"+name+"%"); err == nil {
				r.peakConns = max(r.peakConns, c)
			}
			elapsed := now.Sub(start)
			if rows > 0 && r.firstRow == 0 {
				r.firstRow = elapsed
			}
			r.rowsAtEnd = rows
			if rows == int64(wantRows) && sumOff == wantSum {
				r.total, r.finished = elapsed, true
				exit := p.Stop(30 * time.Second)
				r.cpu, r.maxRSS = exit.CPU, exit.PeakRSS
				if t.check != nil {
					return r, t.check(ctx, table)
				}
				return r, nil
			}
			if elapsed > timeout {
				exit := p.Stop(30 * time.Second)
				r.cpu, r.maxRSS = exit.CPU, exit.PeakRSS
				return r, fmt.Errorf("debezium %s: not done after %s: %d of %d rows", r.name, timeout, rows, wantRows)
			}
			if now.Sub(lastPrint) >= 5*time.Second {
				lastPrint = now
				logf("    %s: %d/%d rows, %d connections", elapsed.Round(100*time.Millisecond), rows, wantRows, r.peakConns)
			}
		}
	}
}
