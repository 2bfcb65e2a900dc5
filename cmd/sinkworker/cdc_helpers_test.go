package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Helpers of the replication tests (cdc_test.go): a real Debezium
// PostgreSQL source in Kafka Connect (scripts/cdc), the sinkworker binary,
// and `sinkworker reconcile` to compare source and target tables.

// cdcServices is the source database and Kafka Connect of scripts/cdc
// (`eval "$(scripts/cdc env)"`); the test fails when either is unset.
func cdcServices(t *testing.T) (sourceURL, connectURL string) {
	t.Helper()
	sourceURL, connectURL = os.Getenv("SOURCE_DATABASE_URL"), os.Getenv("KAFKA_CONNECT_URL")
	if sourceURL == "" {
		t.Fatal(`SOURCE_DATABASE_URL is not set: run scripts/cdc up, then eval "$(scripts/cdc env)"`)
	}
	if connectURL == "" {
		t.Fatal(`KAFKA_CONNECT_URL is not set: run scripts/cdc up, then eval "$(scripts/cdc env)"`)
	}
	return sourceURL, connectURL
}

// lockCDC takes the lock of scripts/cdc (flock on <state dir>/cdc/.lock),
// waiting up to 10 minutes, and holds it until the test ends: no other
// test restarts or kills Kafka Connect meanwhile, whose replay would make
// the target go back in time after the test found it caught up. The test's
// own scripts/cdc commands run under it (SINKWORKER_CDC_LOCKED=1).
func lockCDC(t *testing.T) {
	t.Helper()
	dir := os.Getenv("SINKWORKER_STATE_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", ".services")
	}
	path := filepath.Join(dir, "cdc", ".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	require.NoError(t, err, "open the scripts/cdc lock")
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			t.Fatalf("take the scripts/cdc lock %s: %v", path, err)
		}
	}
	t.Cleanup(func() { f.Close() }) // closing the descriptor releases the lock
}

// cdcScript runs scripts/cdc with args under the lock the test holds
// (lockCDC) and fails the test when it fails.
func cdcScript(t *testing.T, args ...string) {
	t.Helper()
	if err := runCDCScript(args...); err != nil {
		t.Fatal(err)
	}
}

func runCDCScript(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join("..", "..", "scripts", "cdc"), args...)
	cmd.Env = append(os.Environ(), "SINKWORKER_CDC_LOCKED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/cdc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// debeziumSource is the config of a Debezium PostgreSQL source reading every
// table of schema in the scripts/cdc source database, into topics
// <prefix>.<schema>.<table> (one partition each: a truncate has no key, so
// only one partition keeps it in order with the rows around it). Slot and
// publication are named prefix.
func debeziumSource(prefix, schema string) map[string]string {
	return map[string]string{
		"connector.class":                           "io.debezium.connector.postgresql.PostgresConnector",
		"tasks.max":                                 "1",
		"plugin.name":                               "pgoutput",
		"database.hostname":                         "127.0.0.1",
		"database.port":                             "5433",
		"database.user":                             "cdc",
		"database.password":                         "cdc-secret",
		"database.dbname":                           "source",
		"topic.prefix":                              prefix,
		"slot.name":                                 prefix,
		"publication.name":                          prefix,
		"publication.autocreate.mode":               "filtered",
		"table.include.list":                        schema + `\..*`,
		"snapshot.mode":                             "initial",
		"skipped.operations":                        "none",
		"tombstones.on.delete":                      "true",
		"decimal.handling.mode":                     "precise",
		"time.precision.mode":                       "adaptive_time_microseconds",
		"interval.handling.mode":                    "string", // MicroDuration loses months
		"column.propagate.source.type":              ".*",
		"errors.max.retries":                        "5",
		"key.converter":                             "org.apache.kafka.connect.json.JsonConverter",
		"key.converter.schemas.enable":              "true",
		"value.converter":                           "org.apache.kafka.connect.json.JsonConverter",
		"value.converter.schemas.enable":            "true",
		"topic.creation.default.replication.factor": "1",
		"topic.creation.default.partitions":         "1",
	}
}

// registerConnector creates connector name with config (PUT
// /connectors/name/config), waits until it and its task run, and after the
// test unregisters it: scripts/cdc unregister resets its offsets and drops
// its slot and publication.
func registerConnector(t *testing.T, connectURL, name string, config map[string]string) {
	t.Helper()
	body, err := json.Marshal(config)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := runCDCScript("unregister", name); err != nil {
			t.Errorf("unregister connector %s: %v", name, err)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, connectURL+"/connectors/"+name+"/config", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		status, msg := 0, ""
		if resp, err := http.DefaultClient.Do(req); err != nil {
			msg = err.Error()
		} else {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			status, msg = resp.StatusCode, b.String()
		}
		if status == http.StatusOK || status == http.StatusCreated {
			break
		}
		// No answer, or Connect is rebalancing (409), starting (503) or
		// has not read its config topic yet (404): again.
		if status != 0 && status != http.StatusConflict && status != http.StatusServiceUnavailable && status != http.StatusNotFound {
			t.Fatalf("PUT /connectors/%s/config: HTTP %d: %s", name, status, msg)
		}
		require.True(t, time.Now().Before(deadline), "PUT /connectors/%s/config: HTTP %d for 60 s: %s", name, status, msg)
		time.Sleep(time.Second)
	}
	cdcScript(t, "wait-running", name)
}

// cleanPrefix deletes, after the test, every topic whose name starts with
// prefix+"." (Debezium's topics and the worker's dead-letter topics).
func cleanPrefix(t *testing.T, prefix string) {
	t.Helper()
	adm := admin(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			t.Errorf("list topics to delete: %v", err)
			return
		}
		var names []string
		for _, name := range topics.Names() {
			if strings.HasPrefix(name, prefix+".") {
				names = append(names, name)
			}
		}
		if len(names) > 0 {
			_, _ = adm.DeleteTopics(ctx, names...)
		}
	})
}

// caughtUp waits until every topic's end offset is applied by group in
// sink_offsets.
func caughtUp(t *testing.T, pool *pgxpool.Pool, group string, topics []string, timeout time.Duration) {
	t.Helper()
	adm := admin(t)
	var behind []string
	ok := func() bool {
		ends, err := adm.ListEndOffsets(t.Context(), topics...)
		if err != nil {
			return false
		}
		want := map[string]int64{}
		ends.Each(func(o kadm.ListedOffset) { want[o.Topic] += o.Offset })
		behind = behind[:0]
		for _, topic := range topics {
			got, err := appliedOffsets(t.Context(), pool, group, topic)
			if err != nil || got != want[topic] {
				behind = append(behind, fmt.Sprintf("%s %d/%d", topic, got, want[topic]))
			}
		}
		return len(behind) == 0
	}
	require.Eventually(t, ok, timeout, 200*time.Millisecond, "applied offsets never reached the end offsets: %v", behind)
}

// sourceColumns is the table's columns (schema.table) in order other than
// id, with their types as format_type prints them.
func sourceColumns(t *testing.T, pool *pgxpool.Pool, table string) (names, types []string) {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'id'
ORDER BY a.attnum`, table)
	require.NoError(t, err)
	for rows.Next() {
		var n, typ string
		require.NoError(t, rows.Scan(&n, &typ))
		names, types = append(names, n), append(types, typ)
	}
	require.NoError(t, rows.Err())
	return names, types
}

// targetTypes is the types of the target table's columns named in names.
func targetTypes(t *testing.T, pool *pgxpool.Pool, table string, names []string) []string {
	t.Helper()
	out := make([]string, len(names))
	for i, n := range names {
		err := pool.QueryRow(t.Context(), `SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attname = $2 AND NOT a.attisdropped`, pgx.Identifier{table}.Sanitize(), n).Scan(&out[i])
		if err != nil {
			out[i] = "(missing)"
		}
	}
	return out
}

// reconcileTable runs `sinkworker reconcile` on the source table
// (schema.table) and the target table by id over columns, and returns its
// exit status and output.
func reconcileTable(t *testing.T, sourceURL, source, target string, columns []string) (int, string) {
	t.Helper()
	code, stdout, stderr := runBinary(t, nil, "reconcile", "--source", sourceURL, "--source-table", source,
		"--target", dbURL, "--target-table", target, "--key", "id", "--columns", strings.Join(columns, ","))
	return code, stdout + stderr
}

// countRows is the number of rows of table (already quoted).
func countRows(t *testing.T, pool *pgxpool.Pool, table string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// resent counts the change events of topic that Debezium sent more than
// once (the same key, op and source LSN): its at-least-once delivery after
// a restart.
func resent(t *testing.T, topic string) int {
	t.Helper()
	seen, n := map[string]bool{}, 0
	for _, rec := range readTopic(t, topic) {
		var ev struct {
			Payload struct {
				Op     string `json:"op"`
				Source struct {
					LSN int64 `json:"lsn"`
				} `json:"source"`
			} `json:"payload"`
		}
		if rec.Value == nil || json.Unmarshal(rec.Value, &ev) != nil || ev.Payload.Op == "" {
			continue
		}
		id := fmt.Sprintf("%s/%s/%d", rec.Key, ev.Payload.Op, ev.Payload.Source.LSN)
		if seen[id] {
			n++
		}
		seen[id] = true
	}
	return n
}
