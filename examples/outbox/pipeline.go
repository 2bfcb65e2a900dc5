package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// connectorJSON is the Debezium source with the outbox EventRouter, as the
// README shows it; connectorConfig gives it the run's names and the source.
//
//go:embed connector.json
var connectorJSON []byte

// connectorConfig is connector.json's config for this run: the source
// database from SOURCE_DATABASE_URL, and the run's table, slot, publication,
// topic prefix, topic and partitions.
func connectorConfig(c Config, n Names) ([]byte, error) {
	var doc struct {
		Config map[string]string `json:"config"`
	}
	if err := json.Unmarshal(connectorJSON, &doc); err != nil {
		return nil, fmt.Errorf("connector.json: %w", err)
	}
	src, err := pgx.ParseConfig(c.Env.SourceURL)
	if err != nil {
		return nil, errors.New("SOURCE_DATABASE_URL is not a valid connection string")
	}
	cfg := doc.Config
	cfg["database.hostname"] = src.Host
	cfg["database.port"] = strconv.Itoa(int(src.Port))
	cfg["database.user"] = src.User
	cfg["database.password"] = src.Password
	cfg["database.dbname"] = src.Database
	cfg["topic.prefix"] = n.Connector
	cfg["slot.name"] = n.Connector
	cfg["publication.name"] = n.Connector
	cfg["table.include.list"] = `public\.` + n.Outbox
	cfg["transforms.outbox.route.topic.replacement"] = c.Run + ".outbox.event.${routedByValue}"
	cfg["topic.creation.default.partitions"] = strconv.Itoa(c.Partitions)
	return json.Marshal(cfg)
}

// repoRoot is the sinkworker repository around the working directory: it
// holds scripts/cdc and cmd/sinkworker.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(b, []byte("module github.com/sinkworker/sinkworker\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the sinkworker repository (run from it: go run ./examples/outbox)")
		}
		dir = parent
	}
}

// cdc runs scripts/cdc with args; its progress goes to log.
func cdc(ctx context.Context, root string, log io.Writer, stdin []byte, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "cdc"), args...)
	cmd.Stdout, cmd.Stderr = log, log
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/cdc %s: %w", args[0], err)
	}
	return nil
}

// buildWorker builds cmd/sinkworker into dir.
func buildWorker(ctx context.Context, root, dir string, log io.Writer) (string, error) {
	bin := filepath.Join(dir, "sinkworker")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sinkworker")
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/sinkworker: %w", err)
	}
	return bin, nil
}

// worker is one sinkworker process sinking the event topic into points.
type worker struct {
	cmd  *exec.Cmd
	done chan error
}

// workerEnv is the worker's whole environment: keys are the aggregateid
// (text), the primary key user_id of points; values are the payload, JSON
// text (the EventRouter does not expand it), whose fields fill the columns.
func workerEnv(c Config, n Names) []string {
	env := map[string]string{
		"KAFKA_BROKERS": c.Env.KafkaBrokers, "DATABASE_URL": c.Env.TargetURL,
		"KAFKA_TOPICS": n.Topic, "KAFKA_GROUP": n.Connector, "SINK_TABLE_MAP": n.Topic + "=" + n.Points,
		"SINK_MAPPING": "columns", "SINK_KEY_FORMAT": "string", "SINK_VALUE_FORMAT": "json",
		// A killed member's partitions move after 6 s, not the default 45 s.
		"KAFKA_SESSION_TIMEOUT": "6s",
		"HTTP_ADDR":             "", "SHUTDOWN_TIMEOUT": "10s", "LOG_FORMAT": "text", "LOG_LEVEL": "info",
		"PATH": os.Getenv("PATH"),
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// startWorker starts bin, its output appended to logPath.
func startWorker(bin string, env []string, logPath string) (*worker, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start sinkworker: %w", err)
	}
	w := &worker{cmd: cmd, done: make(chan error, 1)}
	go func() { w.done <- cmd.Wait(); f.Close() }()
	return w, nil
}

// stop sends sig and waits for the process to end (at most 30 s, then
// SIGKILL).
func (w *worker) stop(sig syscall.Signal) {
	_ = w.cmd.Process.Signal(sig)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
	}
}

// waitSlot waits until the connector's replication slot exists and is
// active: from then on every commit reaches the connector, so signups may
// start.
func waitSlot(ctx context.Context, src *pgxpool.Pool, slot string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		var active bool
		err := src.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
		if err == nil && active {
			return nil
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("replication slot %s: %w", slot, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replication slot %s not active after 2 minutes", slot)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// count is SELECT count(*) of table.
func count(ctx context.Context, db *pgxpool.Pool, table string) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n)
	return n, err
}

// topicRecords is how many records the topic holds (its partitions' end
// offsets; Debezium's topics start at 0 and are never compacted here):
// committed signups, plus events Debezium sent again after a restart.
func topicRecords(ctx context.Context, brokers, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, ends.Error()
}

// deleteKafka deletes the worker's consumer group and the topics (the
// event topic and its dead-letter topic); ones that do not exist are fine.
func deleteKafka(ctx context.Context, brokers, group string, topics ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var errs []error
	groups, err := adm.DeleteGroups(ctx, group)
	if err == nil {
		err = groups.Error()
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		errs = append(errs, fmt.Errorf("delete group %s: %w", group, err))
	}
	resp, err := adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, r := range resp {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("delete topic %s: %w", r.Topic, r.Err))
		}
	}
	return errors.Join(errs...)
}

// cdcRetry is cdc, tried again for a minute: Kafka Connect may be
// restarting or rebalancing, by this run or by anyone else sharing it, and
// then answers 404 or not at all for a while.
func cdcRetry(ctx context.Context, root string, log io.Writer, stdin []byte, args ...string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := cdc(ctx, root, log, stdin, args...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(3 * time.Second):
		}
	}
}

// Reconciled is what `sinkworker reconcile -json` says (the fields used).
type Reconciled struct {
	Equal        bool  `json:"equal"`
	MissingCount int64 `json:"missing_count"`
	ExtraCount   int64 `json:"extra_count"`
	SourceRows   int64 `json:"source_rows"`
	TargetRows   int64 `json:"target_rows"`
	Ranges       int   `json:"ranges"`
	RowsFetched  int64 `json:"rows_fetched"`
	Source       struct {
		Bytes int64 `json:"bytes"`
	} `json:"source"`
	Target struct {
		Bytes int64 `json:"bytes"`
	} `json:"target"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// reconcileCommand is the command line, with the URLs as the variables
// that hold them (never their text: it has a password).
func reconcileCommand(n Names) string {
	return fmt.Sprintf("sinkworker reconcile --source $SOURCE_DATABASE_URL --source-table %s --target $DATABASE_URL --target-table %s --key user_id --keys-only",
		n.Users, n.Points)
}

// reconcile runs `sinkworker reconcile ... --keys-only -json` on users vs
// points and returns its answer and exit status (0 equal, 1 different).
func reconcile(ctx context.Context, bin string, c Config, n Names) (*Reconciled, int, error) {
	cmd := exec.CommandContext(ctx, bin, "reconcile", "--source-table", n.Users,
		"--target-table", n.Points, "--key", "user_id", "--keys-only", "-json")
	// The URLs go in the environment, not on a command line others can read.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "RECONCILE_SOURCE_URL=" + c.Env.SourceURL, "RECONCILE_TARGET_URL=" + c.Env.TargetURL}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, code, fmt.Errorf("sinkworker reconcile: %w", err)
	}
	if code != 0 && code != 1 {
		return nil, code, fmt.Errorf("sinkworker reconcile: exit %d: %s", code, strings.TrimSpace(errOut.String()))
	}
	var r Reconciled
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return nil, code, fmt.Errorf("sinkworker reconcile -json: %w", err)
	}
	return &r, code, nil
}
