package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// proc is one incarnation of a worker: a sinkworker process.
type proc struct {
	name    string
	n       int // incarnation of name, from 1
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // exit status, once exited is closed

	mu                       sync.Mutex
	addr                     string // HTTP address, once it logged "http listening"
	frozen, stopping, killed bool
	resumed                  time.Time // last SIGCONT
}

func (p *proc) String() string { return fmt.Sprintf("%s#%d", p.name, p.n) }

func (p *proc) state() (addr string, frozen, stopping, killed bool, resumed time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr, p.frozen, p.stopping, p.killed, p.resumed
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) resumedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resumed
}

// fleet supervises the workers of one run: it starts, kills, freezes and
// stops them, and, like a process supervisor, restarts one that exits on its
// own (a crash, reported as a test error).
type fleet struct {
	t   *testing.T
	tl  *timeline
	env map[string]string // settings shared by every worker (run.workerEnv)
	dir string            // worker logs; kept when the test fails

	mu      sync.Mutex
	live    map[string]*proc // the current incarnation of each name that should run
	all     []*proc
	names   int // names handed out: w1, w2, ...
	closing bool
	bg      sync.WaitGroup
}

func newFleet(t *testing.T, tl *timeline, env map[string]string) *fleet {
	dir, err := os.MkdirTemp("", "sinkworker-chaos-logs-")
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, tl: tl, env: env, dir: dir, live: map[string]*proc{}}
	t.Cleanup(func() {
		f.close()
		if t.Failed() {
			for _, p := range f.all {
				if testenv.LogField(p.logPath, "consuming", "level") != "" { // crashes at start-up were shown already
					t.Logf("--- worker %v, %s (last lines) ---\n%s", p, p.logPath, testenv.Tail(p.logPath, 30))
				}
			}
			t.Logf("worker logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return f
}

// join starts a worker under a new name.
func (f *fleet) join() *proc {
	f.mu.Lock()
	f.names++
	name := "w" + strconv.Itoa(f.names)
	f.mu.Unlock()
	return f.start(name)
}

// start starts an incarnation of name; it does not wait for it to listen.
func (f *fleet) start(name string) *proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return nil
	}
	n := 1
	for _, p := range f.all {
		if p.name == name {
			n = p.n + 1
		}
	}
	p := &proc{name: name, n: n, exited: make(chan struct{})}
	p.logPath = filepath.Join(f.dir, fmt.Sprintf("%s.%d.log", name, n))
	out, err := os.Create(p.logPath)
	if err != nil {
		f.t.Errorf("worker log: %v", err)
		return nil
	}
	p.cmd = exec.Command(binary)
	p.cmd.Env = testenv.ProcessEnv(f.env, map[string]string{"SINK_MEMBER": name})
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		out.Close()
		f.t.Errorf("start worker %v: %v", p, err)
		return nil
	}
	f.live[name] = p
	f.all = append(f.all, p)
	f.bg.Add(2)
	go func() { // reap, and restart after a crash
		defer f.bg.Done()
		p.err = p.cmd.Wait()
		out.Close()
		close(p.exited)
		f.exited(p)
	}()
	go func() { // learn the HTTP address
		defer f.bg.Done()
		for {
			if addr := testenv.LogField(p.logPath, "http listening", "addr"); addr != "" {
				p.mu.Lock()
				p.addr = addr
				p.mu.Unlock()
				return
			}
			select {
			case <-p.exited:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return p
}

// exited handles a process that ended: expected after kill and stop,
// otherwise a crash, restarted after a second like a supervisor would.
func (f *fleet) exited(p *proc) {
	_, _, stopping, killed, _ := p.state()
	if stopping || killed {
		return
	}
	f.mu.Lock()
	closing := f.closing
	if f.live[p.name] == p {
		delete(f.live, p.name)
	}
	f.mu.Unlock()
	if closing {
		return
	}
	f.tl.add(event{kind: "crash", worker: p.String(), note: fmt.Sprint(p.err)})
	f.t.Errorf("worker %v exited on its own (%v) at %.1fs; log tail:\n%s", p, p.err, f.tl.rel(time.Now()), testenv.Tail(p.logPath, 4))
	time.Sleep(time.Second)
	if q := f.start(p.name); q != nil {
		f.tl.add(event{kind: "restart", worker: q.String(), note: "after crash"})
	}
}

// ready are the workers one can act on: listening, not frozen nor resumed
// in the last 3 s (a zombie gets the time to notice it lost its partitions),
// not stopping, not dead; sorted by name so a seeded pick is reproducible.
func (f *fleet) ready() []*proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*proc
	for _, p := range f.live {
		addr, frozen, stopping, killed, resumed := p.state()
		if addr != "" && !frozen && time.Since(resumed) > 3*time.Second && !stopping && !killed && p.running() {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *proc) int { return strings.Compare(a.name, b.name) })
	return out
}

// killable are the workers a kill may hit: running, not frozen nor just
// resumed, not stopping; listening or not. Sorted by name.
func (f *fleet) killable() []*proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*proc
	for _, p := range f.live {
		_, frozen, stopping, killed, resumed := p.state()
		if !frozen && time.Since(resumed) > 3*time.Second && !stopping && !killed && p.running() {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *proc) int { return strings.Compare(a.name, b.name) })
	return out
}

// sampleable are the processes whose connections I4 checks: running,
// listening, not frozen (those leaving too: the bound holds while they stop).
func (f *fleet) sampleable() []*proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*proc
	for _, p := range f.all {
		addr, frozen, _, killed, _ := p.state()
		if addr != "" && !frozen && !killed && p.running() {
			out = append(out, p)
		}
	}
	return out
}

// size is the number of workers that should be running (starting, frozen
// or alive).
func (f *fleet) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live)
}

// kill SIGKILLs p and waits until it is gone.
func (f *fleet) kill(p *proc) {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	f.mu.Lock()
	if f.live[p.name] == p {
		delete(f.live, p.name)
	}
	f.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// leave SIGTERMs p and, in the background, requires exit status 0 within a
// minute.
func (f *fleet) leave(p *proc) {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	f.mu.Lock()
	if f.live[p.name] == p {
		delete(f.live, p.name)
	}
	f.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	f.bg.Go(func() { f.requireClean(p, time.Minute) })
}

func (f *fleet) requireClean(p *proc, within time.Duration) {
	select {
	case <-p.exited:
		if p.err != nil {
			f.t.Errorf("worker %v: SIGTERM must end in exit status 0, got %v; log tail:\n%s", p, p.err, testenv.Tail(p.logPath, 30))
		}
	case <-time.After(within):
		f.t.Errorf("worker %v did not exit within %v of SIGTERM; log tail:\n%s", p, within, testenv.Tail(p.logPath, 30))
		_ = p.cmd.Process.Kill()
	}
}

// freeze SIGSTOPs p; thaw SIGCONTs it.
func (f *fleet) freeze(p *proc) {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGSTOP)
}

func (f *fleet) thaw(p *proc) {
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	p.mu.Lock()
	p.frozen, p.resumed = false, time.Now()
	p.mu.Unlock()
}

// frozenOrResumed is the names (as in application_name) of the running
// processes that are SIGSTOPped now or were resumed less than d ago.
func (f *fleet) frozenOrResumed(d time.Duration) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.all {
		_, frozen, _, _, resumed := p.state()
		if p.running() && (frozen || !resumed.IsZero() && time.Since(resumed) < d) {
			out = append(out, p.name)
		}
	}
	return out
}

// ensure starts workers until n should be running.
func (f *fleet) ensure(n int) {
	for f.size() < n {
		if p := f.join(); p != nil {
			f.tl.add(event{kind: "join", worker: p.String(), note: "before the drain"})
		} else {
			return
		}
	}
}

// waitReady waits until at least n workers listen.
func (f *fleet) waitReady(n int, timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for len(f.ready()) < n {
		if time.Now().After(deadline) {
			f.t.Fatalf("fewer than %d workers listening after %v: %s", n, timeout, f.describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopAll SIGTERMs every worker and requires each to exit 0.
func (f *fleet) stopAll() {
	f.mu.Lock()
	var ps []*proc
	for _, p := range f.live {
		ps = append(ps, p)
	}
	f.mu.Unlock()
	for _, p := range ps {
		f.leave(p)
	}
	for _, p := range ps {
		<-p.exited
	}
}

// close kills whatever still runs (frozen ones too) and waits for the
// supervision goroutines.
func (f *fleet) close() {
	f.mu.Lock()
	f.closing = true
	all := slices.Clone(f.all)
	f.mu.Unlock()
	for _, p := range all {
		if p.running() {
			p.mu.Lock()
			p.killed = true
			p.mu.Unlock()
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	f.bg.Wait()
}

// describe is the state of every current worker, for failure messages.
func (f *fleet) describe() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.live {
		addr, frozen, stopping, _, _ := p.state()
		n, err := p.assigned()
		out = append(out, fmt.Sprintf("%v addr=%q frozen=%v stopping=%v running=%v assigned=%d(%v)",
			p, addr, frozen, stopping, p.running(), n, err))
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}
