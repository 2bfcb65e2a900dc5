package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// The suite runs against the real services of `scripts/services up`; without
// KAFKA_BROKERS and DATABASE_URL it fails, never skips.

const (
	partitions     = 12
	sessionTimeout = 6 * time.Second
	maxWorkers     = 4
)

var (
	binary  string // the sinkworker binary under test
	brokers []string
	dbURL   string
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, "chaos", "chaos/README.md", func(e testenv.Env) {
		binary, brokers, dbURL = e.Binary, e.Brokers, e.DatabaseURL
	}))
}

// size is how much chaos one mode gets.
type size struct {
	name    string
	records int           // at least this many records are produced per mode
	keys    int           // key space: upsert mode overwrites and deletes keys
	faults  time.Duration // the fault phase; the producer writes throughout
	// Membership faults (at least this many; a few extra joins or leaves
	// may be added to keep 1..4 workers) and service restarts.
	kills, joins, leaves, zombies int
	dbRestarts, brokerRestarts    int
	freeze                        time.Duration // a zombie's SIGSTOP lasts freeze plus up to 3 s
	drain                         time.Duration // budget for the drain after the faults
}

var sizes = map[string]size{
	"ci": {name: "ci", records: 40_000, keys: 4_000, faults: 60 * time.Second,
		kills: 10, joins: 3, leaves: 3, zombies: 1, dbRestarts: 2, brokerRestarts: 1,
		freeze: 10 * time.Second, drain: 2 * time.Minute},
	"full": {name: "full", records: 1_000_000, keys: 50_000, faults: 12 * time.Minute,
		kills: 50, joins: 15, leaves: 15, zombies: 5, dbRestarts: 10, brokerRestarts: 5,
		freeze: 10 * time.Second, drain: 15 * time.Minute},
}

func chaosSize(t *testing.T) size {
	name := os.Getenv("CHAOS_SIZE")
	if name == "" {
		name = "ci"
	}
	sz, ok := sizes[name]
	require.True(t, ok, "CHAOS_SIZE=%q: want ci or full", name)
	return sz
}

func chaosSeed(t *testing.T) uint64 {
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "CHAOS_SEED")
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// groupProtocols are the KAFKA_GROUP_PROTOCOL values the suite runs, in
// order; CHAOS_GROUP_PROTOCOL picks one of them (default: both).
var groupProtocols = []string{"classic", "consumer"}

func chaosProtocols(t *testing.T) []string {
	p := os.Getenv("CHAOS_GROUP_PROTOCOL")
	if p == "" {
		return groupProtocols
	}
	require.Contains(t, groupProtocols, p, "CHAOS_GROUP_PROTOCOL")
	return []string{p}
}

// TestChaos runs the chaos suite in insert mode and in upsert mode, one
// after the other, each with its own topic, table and group, under the
// classic group protocol and then under KIP-848's consumer protocol.
func TestChaos(t *testing.T) {
	sz, seed, protocols := chaosSize(t), chaosSeed(t), chaosProtocols(t)
	env := fmt.Sprintf("CHAOS_SEED=%d", seed)
	if len(protocols) == 1 {
		env += " CHAOS_GROUP_PROTOCOL=" + protocols[0]
	}
	rerun := env + " go test -count=1 -v ./chaos/"
	if sz.name == "full" {
		rerun = "CHAOS_SIZE=full " + env + " go test -count=1 -timeout 3h -v ./chaos/"
	}
	t.Logf("chaos size %s, seed %d; replay this schedule with: %s", sz.name, seed, rerun)
	// It restarts the shared services: nobody else's scripts/services
	// command or destructive test runs meanwhile.
	svc := testenv.LockServices(t)
	t.Cleanup(func() {
		// Whatever happened, leave the services running for the next test.
		for _, cmd := range []string{"pg-start", "kafka-start"} {
			if out, err := svc.Command(cmd).CombinedOutput(); err != nil {
				t.Errorf("restoring services: scripts/services %s: %v\n%s", cmd, err, out)
			}
		}
		if t.Failed() {
			t.Logf("FAILED with seed %d; replay with: %s", seed, rerun)
		}
	})
	svc.Run(t, "pg-start")
	svc.Run(t, "kafka-start")
	for pi, protocol := range groupProtocols {
		if !slices.Contains(protocols, protocol) {
			continue
		}
		for mi, mode := range []string{"insert", "upsert"} {
			t.Run(protocol+"/"+mode, func(t *testing.T) {
				// Classic runs draw from streams 0 and 1, as before there were two protocols.
				runMode(t, svc, mode, protocol, sz, rand.New(rand.NewPCG(seed, uint64(2*pi+mi))))
			})
		}
	}
}

// run is one mode's chaos run.
type run struct {
	t                   *testing.T
	mode                string
	protocol            string // KAFKA_GROUP_PROTOCOL
	size                size
	topic, table, group string
	pool                *pgxpool.Pool
	adm                 *kadm.Client
	fleet               *fleet
	tl                  *timeline
	svc                 *testenv.ServicesLock // held by TestChaos

	mu sync.Mutex
	// zombies are the zombies that held partitions when frozen; observed:
	// once resumed, they logged "partitions lost" or dropped records the new
	// owner had applied (already_applied rose).
	zombies []faultCheck
	// dbRestarts are the database restarts; observed: some worker retried a
	// transaction or reported not-ready within 10 s.
	dbRestarts []faultCheck
}

// quiet keeps the database restarts with no membership change or broker
// restart from 5 s before to 10 s after them: a rebalance then closes the
// connections the restart cut and the workers open new ones without ever
// failing on the old, and a killed worker takes its retry count with it.
func quiet(checks []faultCheck, evs []event) []faultCheck {
	var out []faultCheck
	for _, c := range checks {
		wide := faultCheck{from: c.from.Add(-5 * time.Second), to: c.to.Add(10 * time.Second)}
		if n, _ := observable([]faultCheck{wide}, evs, "broker-restart", "kill", "restart", "join", "leave",
			"zombie", "resume", "crash"); n == 1 {
			out = append(out, c)
		}
	}
	return out
}

// writingThrough counts the database restarts during whose last 3 s
// before the restart some partition committed (workers were writing, so
// they held connections the restart cut and must notice it; after a long
// rebalance pause a worker may open new connections and never see it), and
// how many of those were observed.
func writingThrough(checks []faultCheck, obs []commitObs) (eligible, observed int) {
	for _, c := range checks {
		if slices.ContainsFunc(obs, func(o commitObs) bool {
			return !o.at.Before(c.from.Add(-3*time.Second)) && !o.at.After(c.from)
		}) {
			eligible++
			if c.observed {
				observed++
			}
		}
	}
	return eligible, observed
}

// faultCheck is an injected fault and whether its effect was observed.
type faultCheck struct {
	from, to time.Time
	observed bool
}

// observable counts the checks no other fault of the given kinds
// overlapped (a broker restart during a freeze restarts the group's session
// timers, so the frozen member may never be fenced; a rebalance during a
// database restart may leave no worker writing to notice it), and how many
// of those were observed. Only those make a sound assertion.
func observable(checks []faultCheck, evs []event, kinds ...string) (eligible, observed int) {
	for _, c := range checks {
		disturbed := false
		for _, e := range evs {
			end := e.end
			if end.IsZero() {
				end = e.at
			}
			if slices.Contains(kinds, e.kind) && !e.at.After(c.to) && !end.Before(c.from) {
				disturbed = true
				break
			}
		}
		if !disturbed {
			eligible++
			if c.observed {
				observed++
			}
		}
	}
	return eligible, observed
}

func runMode(t *testing.T, svc *testenv.ServicesLock, mode, protocol string, sz size, rng *rand.Rand) {
	began := time.Now()
	r := newRun(t, mode, protocol, sz)
	r.svc = svc
	// Draw every random choice up front, so the seed alone fixes the schedule.
	steps, infra := plan(sz, rand.New(rand.NewPCG(rng.Uint64(), 1)))
	prod := newProducer(t, r.topic, sz.keys, rng.Uint64())

	r.fleet = newFleet(t, r.tl, r.workerEnv())
	for range 2 {
		r.fleet.join()
	}
	r.fleet.waitReady(2, 60*time.Second)
	i4, prog, stopSampling := r.startSampling()

	faultEnd := r.chaos(prod, steps, infra)
	ends := r.drain(faultEnd)
	stopSampling()
	r.fleet.stopAll()

	log := readLog(t, r.topic, ends)
	prod.checkAcked(t, log)
	var missing, extra int
	if mode == "insert" {
		missing, extra = r.checkInsert(log)
	} else {
		missing, extra = r.checkUpsert(log)
	}
	dlq := r.dlqRecords()
	assert.Zero(t, dlq, "records in the dead-letter topic %s.dlq (no bad input was produced)", r.topic)
	r.audit()

	ps := pauses(prog.observations(), log, r.tl)
	counts := r.tl.counts()
	t.Logf("timeline (seconds since the faults began):\n%s", r.tl.String())
	t.Logf("I4: %s", i4.summary())
	t.Logf("pauses (no progress on a partition while it had records waiting), largest first:\n%s", ps.top(6))
	t.Logf("FIGURES mode=%s protocol=%s size=%s: records=%d (acked %d, failed produces %d) kills=%d restarts=%d joins=%d leaves=%d "+
		"zombies=%d crashes=%d db_restarts=%d broker_restarts=%d missing=%d extra=%d dlq=%d i4_violations=%d "+
		"longest_pause=%s longest_rebalance_pause=%s longest_clean_rebalance_pause=%s duration=%v",
		mode, protocol, sz.name, log.count(), prod.ackedCount(), prod.failedCount(), counts["kill"], counts["restart"], counts["join"],
		counts["leave"], counts["zombie"], counts["crash"], counts["db-restart"], counts["broker-restart"], missing, extra, dlq,
		len(i4.violations), ps.longest(anyPause), ps.longest(membershipCaused), ps.longest(pause.rebalance),
		time.Since(began).Round(time.Second))

	assert.Zero(t, len(i4.violations), "I4 violations (listed above, under I4)")
	r.mu.Lock()
	zombies, dbRestarts := slices.Clone(r.zombies), slices.Clone(r.dbRestarts)
	r.mu.Unlock()
	evs := r.tl.events()
	zEligible, zFenced := observable(zombies, evs, "db-restart", "broker-restart")
	dEligible, dSeen := writingThrough(quiet(dbRestarts, evs), prog.observations())
	t.Logf("effects: zombies fenced %d of %d undisturbed (%d in all); database restarts seen %d of %d quiet and while writing (%d in all)",
		zFenced, zEligible, len(zombies), dSeen, dEligible, len(dbRestarts))
	if zEligible > 0 {
		assert.Positive(t, zFenced, "undisturbed zombies that held partitions and were fenced on resuming (see the resume lines of the timeline)")
	}
	if dEligible > 0 {
		assert.Positive(t, dSeen, "database restarts during writes that the workers saw (a retry or a not-ready /readyz)")
	}
	assert.GreaterOrEqual(t, counts["kill"], sz.kills, "kills")
	assert.GreaterOrEqual(t, counts["zombie"], sz.zombies, "zombies")
	assert.GreaterOrEqual(t, counts["db-restart"], sz.dbRestarts, "database restarts")
	assert.GreaterOrEqual(t, counts["broker-restart"], sz.brokerRestarts, "broker restarts")
	assert.GreaterOrEqual(t, log.count(), sz.records, "records in the topic")
}

// newRun creates the run's topic; its table, group and topic are dropped
// after a passing test and kept after a failing one.
func newRun(t *testing.T, mode, protocol string, sz size) *run {
	name := "chaos_" + mode + "_" + testenv.Suffix()
	r := &run{t: t, mode: mode, protocol: protocol, size: sz, topic: name, table: name, group: name, tl: newTimeline()}
	r.pool, r.adm = testPool(t), testenv.Admin(t, brokers)
	createTopic(t, r.adm, r.topic)
	if protocol == "consumer" {
		setGroupSession(t, r.group)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept for inspection: topic %s (and %s.dlq), table %s, group %s in sink_offsets", r.topic, r.topic, r.table, r.group)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = r.adm.DeleteTopics(ctx, r.topic, r.topic+".dlq")
		_, _ = r.pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{r.table}.Sanitize())
		_, _ = r.pool.Exec(ctx, "DELETE FROM sink_offsets WHERE consumer_group = $1", r.group)
	})
	t.Logf("mode %s, %s group protocol: topic, table and group %s; %d records, %v of faults", mode, protocol, name, sz.records, sz.faults)
	return r
}

// startSampling starts the I4 and progress samplers; stop ends them (it
// also runs at cleanup, before the pool closes).
func (r *run) startSampling() (i4 *i4Sampler, prog *progressSampler, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	i4, prog = &i4Sampler{r: r}, &progressSampler{r: r}
	var wg sync.WaitGroup
	wg.Go(func() { i4.loop(ctx) })
	wg.Go(func() { prog.loop(ctx) })
	stop = func() { cancel(); wg.Wait() }
	r.t.Cleanup(stop)
	return i4, prog, stop
}

// chaos runs the producer through the fault schedule and returns when both
// are done (the producer once it sent the size's records, all acknowledged
// or failed for good).
func (r *run) chaos(prod *producer, steps []step, infra []infraStep) time.Time {
	faultsDone, produced := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(produced)
		prod.run(faultsDone, float64(r.size.records)/r.size.faults.Seconds(), r.size.records)
	}()
	r.tl.start()
	r.injectFaults(steps, infra)
	close(faultsDone)
	<-produced
	end := time.Now()
	r.t.Logf("faults done after %v; %d records sent, %d acked, %d failed", end.Sub(r.tl.t0).Round(time.Second),
		prod.sent.Load(), prod.ackedCount(), prod.failedCount())
	return end
}

// drain makes sure everything runs (the services, at least two workers),
// waits until the database has applied every record, and returns the log
// end offsets it waited for.
func (r *run) drain(faultEnd time.Time) []int64 {
	t := r.t
	r.svc.Run(t, "pg-start")
	r.svc.Run(t, "kafka-start")
	r.fleet.ensure(2)
	r.fleet.waitReady(2, 90*time.Second)
	ends := r.endOffsets(t)
	r.waitDrained(ends)
	t.Logf("drained %v after the faults", time.Since(faultEnd).Round(100*time.Millisecond))
	return ends
}

// workerEnv is the environment every worker of the run shares: these
// settings and nothing else of the test's environment (testenv.ProcessEnv),
// so a variable exported in a developer's shell cannot change what is
// tested.
func (r *run) workerEnv() map[string]string {
	env := map[string]string{
		"KAFKA_BROKERS": strings.Join(brokers, ","), "DATABASE_URL": dbURL,
		"KAFKA_TOPICS": r.topic, "KAFKA_GROUP": r.group, "SINK_MODE": r.mode,
		"KAFKA_GROUP_PROTOCOL": r.protocol,
		"SHUTDOWN_TIMEOUT":     "10s", "HTTP_ADDR": "127.0.0.1:0", "BATCH_MAX_RECORDS": "500",
		"SINK_TABLE_MAP": r.topic + "=" + r.table, "LOG_LEVEL": "info", "LOG_FORMAT": "json",
	}
	if r.protocol == "classic" { // the consumer protocol takes it from the group's config
		env["KAFKA_SESSION_TIMEOUT"] = sessionTimeout.String()
	}
	return env
}

// setGroupSession gives a KIP-848 group the session timeout the classic runs
// use, through its group config (scripts/services lowers the broker's
// minimum to allow it), with heartbeats every third of it.
func setGroupSession(t *testing.T, group string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer cl.Close()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	for _, c := range []struct {
		name string
		d    time.Duration
	}{{"consumer.session.timeout.ms", sessionTimeout}, {"consumer.heartbeat.interval.ms", sessionTimeout / 3}} {
		rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		rc.Name, rc.Op, rc.Value = c.name, kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(strconv.FormatInt(c.d.Milliseconds(), 10))
		res.Configs = append(res.Configs, rc)
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(t.Context(), cl)
	require.NoError(t, err, "set the group config of %s", group)
	for _, r := range resp.Resources {
		var msg string
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		require.NoError(t, kerr.ErrorForCode(r.ErrorCode), "set the group config of %s: %s", group, msg)
	}
}

// testPool is the test's own pool, with an application_name no worker uses
// and a short connect timeout, since the database restarts under it.
func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["application_name"] = "chaos-test"
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	cfg.MaxConns = 4
	p, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

func createTopic(t *testing.T, adm *kadm.Client, topic string) {
	t.Helper()
	resp, err := adm.CreateTopic(t.Context(), partitions, 1, nil, topic)
	require.NoError(t, err)
	require.NoError(t, resp.Err)
}

// retry calls f until it succeeds or timeout passes (the broker or the
// database may be restarting), returning the last error.
func retry(timeout time.Duration, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := f(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// endOffsets is each partition's log end offset.
func (r *run) endOffsets(t *testing.T) []int64 {
	t.Helper()
	ends := make([]int64, partitions)
	err := retry(2*time.Minute, func(ctx context.Context) error {
		listed, err := r.adm.ListEndOffsets(ctx, r.topic)
		if err != nil {
			return err
		}
		if err := listed.Error(); err != nil {
			return err
		}
		n := 0
		listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset; n++ })
		if n != partitions {
			return fmt.Errorf("%d of %d partitions listed", n, partitions)
		}
		return nil
	})
	require.NoError(t, err, "list end offsets")
	return ends
}

// waitDrained waits until every partition's next_offset in sink_offsets
// reaches its log end.
func (r *run) waitDrained(ends []int64) {
	t := r.t
	t.Helper()
	deadline := time.Now().Add(r.size.drain)
	var lag string
	for time.Now().Before(deadline) {
		next, err := r.dbOffsets()
		if err == nil {
			var behind []string
			for p, end := range ends {
				if next[int32(p)] != end {
					behind = append(behind, fmt.Sprintf("p%d at %d of %d", p, next[int32(p)], end))
				}
			}
			if len(behind) == 0 {
				return
			}
			lag = strings.Join(behind, ", ")
		} else {
			lag = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("never drained within %v: %s\nworkers: %s", r.size.drain, lag, r.fleet.describe())
}

// dbOffsets is the group's next_offset per partition in sink_offsets.
func (r *run) dbOffsets() (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rows, err := r.pool.Query(ctx, `SELECT partition, next_offset FROM sink_offsets
WHERE consumer_group = $1 AND topic = $2`, r.group, r.topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	var (
		p    int32
		next int64
	)
	_, err = pgx.ForEachRow(rows, []any{&p, &next}, func() error { out[p] = next; return nil })
	return out, err
}
