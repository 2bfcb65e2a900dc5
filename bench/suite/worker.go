package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sinkworker/sinkworker/bench/internal/rss"
	"github.com/sinkworker/sinkworker/sink"
)

// point is one sinkworker configuration of the sweep.
type point struct {
	parts, workers, pool, batch int
}

func (p point) String() string {
	return fmt.Sprintf("P=%d W=%d POOL=%d BATCH=%d", p.parts, p.workers, p.pool, p.batch)
}

// conns is how many connections the design should hold: each worker
// max(1, min(its partitions, POOL_MAX_CONNS)).
func (p point) conns() int {
	n := 0
	for w := range p.workers {
		mine := p.parts / p.workers
		if w < p.parts%p.workers {
			mine++
		}
		if mine > 0 {
			n += max(1, min(mine, p.pool))
		}
	}
	return n
}

// pointResult is what one sweep point measured.
type pointResult struct {
	point
	records     int
	drain       time.Duration // first worker start to every offset in sink_offsets
	firstCommit time.Duration // start to the first poll showing a commit
	firstCount  int64         // records committed at that poll
	peakConns   int
	cpu         time.Duration // all worker processes, user+system
	maxRSS      int64         // largest peak RSS of one worker process, bytes
	sumRSS      int64         // sum of the workers' peak RSS
	latRate     float64       // records/s offered in the latency run
	latN        int
	p50, p99    time.Duration
	attempts    int
	logLines    int
	notes       []string
}

func (r pointResult) rate() float64 { return rate(int64(r.records), r.drain) }

// steadyRate leaves start-up out: records committed after the first poll
// that showed a commit, over the time since.
func (r pointResult) steadyRate() float64 {
	if r.firstCount >= int64(r.records) { // all of it at the first poll: nothing to leave out
		return r.rate()
	}
	return rate(int64(r.records)-r.firstCount, r.drain-r.firstCommit)
}

// proc is one running child process (a worker, naive consumer or Connect).
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

func startProc(ctx context.Context, bin string, args, env []string, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); f.Close(); close(p.exited) }()
	return p, nil
}

// stop sends SIGTERM and waits up to grace, then kills the process group.
// maxRSS is the process's own peak (VmHWM, read just before SIGTERM): the
// rusage figure is not, as on Linux exec records the forking parent's peak
// (this harness, which holds the dataset) in the child's ru_maxrss.
func (p *proc) stop(grace time.Duration) (exitCode int, cpu time.Duration, maxRSS int64) {
	maxRSS = rss.Peak(p.cmd.Process.Pid)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
	st := p.cmd.ProcessState
	cpu = st.UserTime() + st.SystemTime()
	return st.ExitCode(), cpu, maxRSS
}

func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func workerEnv(s *services, topic, group, table, member string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !ownedSetting(k) {
			env = append(env, kv)
		}
	}
	env = append(env, "KAFKA_BROKERS="+strings.Join(s.brokers, ","), "DATABASE_URL="+s.dsn,
		"KAFKA_TOPICS="+topic, "KAFKA_GROUP="+group, "SINK_TABLE_MAP="+topic+"="+table,
		"SINK_MEMBER="+member, "HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=warn")
	return append(env, extra...)
}

func ownedSetting(k string) bool {
	for _, p := range []string{"KAFKA_", "SINK_", "BATCH_", "POOL_", "LOG_"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	switch k {
	case "DATABASE_URL", "ERROR_POLICY", "DLQ_TOPIC", "HTTP_ADDR", "SHUTDOWN_TIMEOUT":
		return true
	}
	return false
}

// offsets reads a group's sink_offsets next_offset per partition.
func offsets(ctx context.Context, s *services, group, topic string, parts int) ([]int64, error) {
	next := make([]int64, parts)
	rows, err := s.db.Query(ctx, `SELECT partition, next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2`, group, topic)
	if err != nil {
		if undefinedTable(err) {
			return next, nil
		}
		return nil, err
	}
	var p int32
	var o int64
	_, err = pgx.ForEachRow(rows, []any{&p, &o}, func() error {
		if int(p) < parts {
			next[p] = o
		}
		return nil
	})
	return next, err
}

func sum(xs []int64) (s int64) {
	for _, x := range xs {
		s += x
	}
	return s
}

// runPoint drains the point's pre-produced topic with fresh group and table,
// then (latency > 0) measures end-to-end latency on a fresh topic at half
// the drain rate. Retrying on disturbance is the caller's.
func (b *bench) runPoint(ctx context.Context, pt point, d *dataset, l *layout, env []string, latency time.Duration) (pointResult, error) {
	s := b.s
	r := pointResult{point: pt, records: d.n}
	id := b.nextID()
	group, table := fmt.Sprintf("bs%s-%d", b.stamp, id), fmt.Sprintf("bench_suite_%s_%d", b.stamp, id)
	defer func() {
		if !b.o.keep {
			s.dropTable(table)
			s.dropGroup(group)
		}
	}()
	extra := append([]string{"POOL_MAX_CONNS=" + strconv.Itoa(pt.pool), "BATCH_MAX_RECORDS=" + strconv.Itoa(pt.batch)}, env...)
	if _, err := s.db.Exec(ctx, "CHECKPOINT"); err != nil {
		return r, fmt.Errorf("checkpoint: %w", err)
	}
	procs, err := b.startWorkers(ctx, pt.workers, l.topic, group, table, id, extra)
	if err != nil {
		return r, err
	}
	defer func() {
		for _, p := range procs {
			if !p.done() {
				p.kill()
			}
		}
	}()
	start := time.Now()
	total := int64(d.n)
	app := "sinkworker/" + group + "/%"
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	lastPrint := time.Now()
	for {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case now := <-tick.C:
			for _, p := range procs {
				if p.done() {
					return r, fmt.Errorf("a worker exited early (%s)\n%s", p.cmd.ProcessState, tail(p.log, 20))
				}
			}
			next, err := offsets(ctx, s, group, l.topic, l.parts)
			if err != nil {
				return r, fmt.Errorf("poll sink_offsets: %w", err)
			}
			c, err := s.connsLike(ctx, app)
			if err != nil {
				return r, err
			}
			r.peakConns = max(r.peakConns, c)
			committed, elapsed := sum(next), now.Sub(start)
			if committed > 0 && r.firstCommit == 0 {
				r.firstCommit, r.firstCount = elapsed, committed
			}
			if committed >= total {
				r.drain = elapsed
				goto drained
			}
			if elapsed > b.o.timeout {
				return r, fmt.Errorf("not drained after %s: %d of %d", b.o.timeout, committed, total)
			}
			if now.Sub(lastPrint) >= 5*time.Second {
				lastPrint = now
				logf("    %s: %d/%d (%.0f records/s), %d connections", elapsed.Round(100*time.Millisecond),
					committed, total, float64(committed)/elapsed.Seconds(), c)
			}
		}
	}
drained:
	for _, p := range procs {
		code, cpu, peak := p.stop(60 * time.Second)
		r.cpu += cpu
		r.maxRSS, r.sumRSS = max(r.maxRSS, peak), r.sumRSS+peak
		r.logLines += len(lines(p.log))
		if code != 0 {
			return r, fmt.Errorf("a worker exited with status %d after SIGTERM\n%s", code, tail(p.log, 20))
		}
	}
	if err := checkTable(ctx, s, table, d, l); err != nil {
		return r, err
	}
	if latency > 0 {
		if err := b.latency(ctx, &r, extra, latency); err != nil {
			return r, fmt.Errorf("latency run: %w", err)
		}
	}
	return r, nil
}

func (b *bench) startWorkers(ctx context.Context, n int, topic, group, table string, id int, extra []string) ([]*proc, error) {
	var procs []*proc
	for w := range n {
		logPath := filepath.Join(b.tmp, fmt.Sprintf("worker-%d-%d.log", id, w))
		p, err := startProc(ctx, b.workerBin, nil, workerEnv(b.s, topic, group, table, fmt.Sprintf("w%d", w), extra...), logPath)
		if err != nil {
			for _, q := range procs {
				q.kill()
			}
			return nil, err
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// latency runs the point's settings on a fresh topic of the same partition
// count: once the group is stable it produces at half the measured drain
// rate for dur, polls sink_offsets every 10 ms, and takes each record's
// latency from its produce time to the first poll that saw its offset
// committed.
func (b *bench) latency(ctx context.Context, r *pointResult, extra []string, dur time.Duration) error {
	s := b.s
	id := b.nextID()
	topic := fmt.Sprintf("bench-suite-%s-lat-%d", b.stamp, id)
	group, table := fmt.Sprintf("bs%s-%d", b.stamp, id), fmt.Sprintf("bench_suite_%s_%d", b.stamp, id)
	defer func() {
		if !b.o.keep {
			s.dropTable(table)
			s.dropGroup(group)
			s.dropTopics(topic, topic+".dlq")
		}
	}()
	if err := s.createTopic(ctx, topic, int32(r.parts)); err != nil {
		return err
	}
	// The table and offsets exist before the first poll.
	cfg := sink.Config{Topics: []string{topic}, TableMap: map[string]string{topic: table}, Mode: sink.ModeUpsert, OffsetsTable: "sink_offsets"}
	if err := sink.EnsureTables(ctx, s.db, cfg); err != nil {
		return err
	}
	procs, err := b.startWorkers(ctx, r.workers, topic, group, table, id, extra)
	if err != nil {
		return err
	}
	defer func() {
		for _, p := range procs {
			if !p.done() {
				p.kill()
			}
		}
	}()
	if err := waitStable(ctx, s, group, r.workers, 60*time.Second); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	r.latRate = r.rate() / 2

	type obs struct {
		at   time.Time
		next []int64
	}
	var trace []obs
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan error, 1)
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-pollCtx.Done():
				polled <- nil
				return
			case <-t.C:
				next, err := offsets(pollCtx, s, group, topic, r.parts)
				if err != nil {
					if pollCtx.Err() != nil {
						polled <- nil
					} else {
						polled <- err
					}
					return
				}
				trace = append(trace, obs{time.Now(), next})
			}
		}
	}()
	sentRecs, err := produceAtRate(ctx, s, b.d, topic, r.latRate, dur)
	if err != nil {
		stopPoll()
		<-polled
		return err
	}
	want := make([]int64, r.parts)
	for _, x := range sentRecs {
		want[x.part] = max(want[x.part], x.off+1)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		next, err := offsets(ctx, s, group, topic, r.parts)
		if err != nil {
			stopPoll()
			<-polled
			return err
		}
		if sum(next) >= sum(want) {
			break
		}
		if time.Now().After(deadline) {
			stopPoll()
			<-polled
			return fmt.Errorf("latency run: %d of %d committed after 2 minutes", sum(next), sum(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	stopPoll()
	if err := <-polled; err != nil {
		return err
	}
	for _, p := range procs {
		p.stop(60 * time.Second)
	}
	// For each record: the first observation with next_offset > its offset.
	lat := make([]time.Duration, 0, len(sentRecs))
	for _, x := range sentRecs {
		j, _ := slices.BinarySearchFunc(trace, x, func(o obs, x sent) int {
			if o.next[x.part] > x.off {
				return 1
			}
			return -1
		})
		if j < len(trace) {
			lat = append(lat, max(0, trace[j].at.Sub(x.at)))
		}
	}
	if len(lat) == 0 {
		return errors.New("no latency observed")
	}
	slices.Sort(lat)
	r.latN = len(lat)
	r.p50, r.p99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	return nil
}

// waitStable waits until the group is Stable with n members.
func waitStable(ctx context.Context, s *services, group string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		gs, err := s.adm.DescribeGroups(ctx, group)
		if err == nil {
			if g, ok := gs[group]; ok && g.Err == nil && g.State == "Stable" && len(g.Members) == n && assigned(g) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("group %s not stable with %d members after %s", group, n, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func assigned(g kadm.DescribedGroup) bool {
	for _, m := range g.Members {
		if _, ok := m.Assigned.AsConsumer(); !ok {
			return false
		}
	}
	return true
}

func lines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func tail(path string, n int) string {
	ls := lines(path)
	ls = ls[max(0, len(ls)-n):]
	return "log " + path + " (last lines):\n  " + strings.Join(ls, "\n  ")
}
