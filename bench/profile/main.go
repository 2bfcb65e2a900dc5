// Command profile drains a pre-produced topic with one worker and takes a
// CPU profile of it while it works: where the worker's CPU goes per record.
//
//	scripts/services up && eval "$(scripts/services env)"
//	go run ./bench/profile -partitions 64 -records 1000000 -seconds 10
//
// It prints the worker's CPU seconds per million records (user + system of
// the whole run), its records/s, the profile's top functions and the
// drain's allocations by bytes; both profiles are kept in -out for
// `go tool pprof`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
	"github.com/sinkworker/sinkworker/bench/internal/dataset"
	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		parts, records, seconds int
		out, root               string
		env                     proc.EnvFlag
	)
	flag.IntVar(&parts, "partitions", 64, "partitions of the topic")
	flag.IntVar(&records, "records", 1_000_000, "records to drain (keys repeat: records/5 distinct)")
	flag.IntVar(&seconds, "seconds", 10, "length of the CPU profile, taken from the first commit on")
	flag.StringVar(&out, "out", "", "directory for cpu.pprof and the worker's log (default: a temp dir)")
	flag.StringVar(&root, "worker-root", ".", "build the worker from the module at this directory")
	flag.Var(&env, "env", "extra KEY=VALUE for the worker (repeatable)")
	flag.Parse()
	brokers, dsn := strings.Split(os.Getenv("KAFKA_BROKERS"), ","), os.Getenv("DATABASE_URL")
	if brokers[0] == "" || dsn == "" {
		return errors.New(`KAFKA_BROKERS and DATABASE_URL must be set: eval "$(scripts/services env)"`)
	}
	ctx := context.Background()
	if out == "" {
		var err error
		if out, err = os.MkdirTemp("", "sinkworker-profile-"); err != nil {
			return err
		}
	}
	bin := filepath.Join(out, "sinkworker")
	if err := proc.Build(ctx, root, "./cmd/sinkworker", bin); err != nil {
		return err
	}
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close(ctx)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	stamp := strconv.FormatInt(time.Now().Unix()%1_000_000, 10)
	topic, group, table := "bench-profile-"+stamp, "bench-profile-"+stamp, "bench_profile_"+stamp
	defer func() {
		_ = broker.DeleteTopic(ctx, adm, topic)
		_ = broker.DeleteTopic(ctx, adm, topic+".dlq")
		_ = broker.DeleteGroup(ctx, adm, group)
		_, _ = db.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{table}.Sanitize())
		_, _ = db.Exec(ctx, "DELETE FROM sink_offsets WHERE consumer_group = $1", group)
	}()
	if err := broker.CreateTopic(ctx, adm, topic, int32(parts)); err != nil {
		return err
	}
	d := dataset.New(records, max(1, records/5))
	if _, err := dataset.Produce(ctx, d, topic, parts, nil, kgo.SeedBrokers(brokers...)); err != nil {
		return err
	}
	ends, err := broker.EndOffsets(ctx, adm, topic)
	if err != nil {
		return err
	}
	var want int64
	for _, e := range ends {
		want += e
	}

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	wenv := proc.WorkerEnv(os.Environ(), brokers, dsn, topic, group, table,
		append([]string{"HTTP_ADDR=" + addr, "HTTP_PPROF=true"}, env...)...)
	others := sampleCPU() // the broker's and PostgreSQL's CPU, for what the drain costs them
	start := time.Now()
	p, err := proc.Start(bin, nil, wenv, filepath.Join(out, "worker.log"))
	if err != nil {
		return err
	}
	defer p.Kill()
	committed := func() (int64, error) {
		next, err := sinkdb.Next(ctx, db, group, topic, parts)
		var n int64
		for _, o := range next {
			n += o
		}
		return n, err
	}
	for n := int64(0); n == 0; {
		if p.Done() {
			return fmt.Errorf("the worker exited:\n%s", p.Tail(20))
		}
		time.Sleep(50 * time.Millisecond)
		if n, err = committed(); err != nil {
			return err
		}
	}
	first := time.Since(start)
	prof := filepath.Join(out, "cpu.pprof")
	if err := fetch(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), prof); err != nil {
		return err
	}
	heap := filepath.Join(out, "heap.pprof") // what is live mid-drain
	if err := fetch(fmt.Sprintf("http://%s/debug/pprof/heap", addr), heap); err != nil {
		return err
	}
	for {
		n, err := committed()
		if err != nil {
			return err
		}
		if n == want {
			break
		}
		if p.Done() {
			return fmt.Errorf("the worker exited:\n%s", p.Tail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	spent := sampleCPU().since(others)           // before the worker's backends exit with their CPU
	allocs := filepath.Join(out, "allocs.pprof") // cumulative since start: the whole drain
	if err := fetch(fmt.Sprintf("http://%s/debug/pprof/allocs", addr), allocs); err != nil {
		return err
	}
	exit := p.Stop(30 * time.Second)
	fmt.Printf("%d records, %d partitions: drained in %.1f s (first commit at %.1f s), %.0f records/s; worker CPU %.1f s, %.2f s per million records; peak RSS %d MiB\n",
		want, parts, took.Seconds(), first.Seconds(), float64(want)/took.Seconds(), exit.CPU.Seconds(),
		exit.CPU.Seconds()/float64(want)*1e6, exit.PeakRSS>>20)
	perM := func(d time.Duration) float64 { return d.Seconds() / float64(want) * 1e6 }
	fmt.Printf("CPU seconds per million records: worker %.2f, broker %.2f, PostgreSQL %.2f (its processes during the drain; other work on the machine counts too)\n",
		perM(exit.CPU), perM(spent.broker), perM(spent.postgres))
	fmt.Printf("profile: %s (%d s from the first commit); go tool pprof -top %s %s\n", prof, seconds, bin, prof)
	fmt.Printf("allocations of the whole drain: %s; go tool pprof -sample_index=alloc_space -top %s %s\n", allocs, bin, allocs)
	fmt.Printf("live heap after the CPU profile: %s; go tool pprof -sample_index=inuse_space -top %s %s\n", heap, bin, heap)
	for _, args := range [][]string{{"-top", "-nodecount=40", bin, prof}, {"-sample_index=alloc_space", "-top", "-nodecount=25", bin, allocs}} {
		top := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof"}, args...)...)
		top.Stdout, top.Stderr = os.Stdout, os.Stderr
		if err := top.Run(); err != nil {
			return err
		}
	}
	return nil
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func fetch(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuSample is the CPU time the broker and PostgreSQL's processes have used
// so far (utime + stime from /proc, Linux).
type cpuSample struct {
	broker   time.Duration
	postgres map[int]time.Duration // by pid: backends come and go
}

func (a cpuSample) since(b cpuSample) (d struct{ broker, postgres time.Duration }) {
	d.broker = a.broker - b.broker
	for pid, t := range a.postgres {
		d.postgres += t - b.postgres[pid] // a backend born since counts from 0
	}
	return d
}

func sampleCPU() cpuSample {
	s := cpuSample{postgres: map[int]time.Duration{}}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name in parentheses: utime and stime
		// are the 12th and 13th, in clock ticks (100 per second).
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		t := time.Duration(u+k) * 10 * time.Millisecond
		switch args := strings.ReplaceAll(string(cmd), "\x00", " "); {
		case strings.Contains(args, "kafka.Kafka"):
			s.broker += t
		case strings.HasPrefix(args, "postgres:") || filepath.Base(strings.SplitN(args, " ", 2)[0]) == "postgres":
			s.postgres[pid] = t
		}
	}
	return s
}
