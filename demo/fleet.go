package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// fleet is the worker processes: the sinkworker binary's `run` subcommand,
// one consumer-group member each. It is used from one goroutine.
type fleet struct {
	binary  string
	dir     string   // where each worker's stderr (JSON logs) goes
	env     []string // without SINK_MEMBER
	workers []*worker
	http    *http.Client
}

// worker is one process of the fleet; a restart replaces it.
type worker struct {
	name    string
	pid     int
	addr    string // its HTTP listener (/metrics)
	logPath string
	cmd     *exec.Cmd
	logf    *os.File
	done    chan struct{} // closed after the process has been waited for
	err     error         // the exit status; read after done
	killed  bool          // the demo ended it on purpose
}

func newFleet(binary, dir string, env []string) *fleet {
	return &fleet{binary: binary, dir: dir, env: env, http: &http.Client{Timeout: 2 * time.Second}}
}

// start starts worker slot i (demo-<i+1>), or restarts it, and waits until
// it is listening: by then it has created its tables and dead-letter topic.
func (f *fleet) start(ctx context.Context, i int) (*worker, error) {
	for len(f.workers) <= i {
		f.workers = append(f.workers, nil)
	}
	name := "demo-" + strconv.Itoa(i+1)
	w := &worker{name: name, logPath: filepath.Join(f.dir, name+".log"), done: make(chan struct{})}
	logf, err := os.OpenFile(w.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	from, _ := logf.Seek(0, io.SeekEnd) // a restart appends: read only this run's lines
	w.logf = logf
	w.cmd = exec.Command(f.binary, "run")
	w.cmd.Env = append(append([]string(nil), f.env...), "SINK_MEMBER="+name)
	w.cmd.Stdout, w.cmd.Stderr, w.cmd.SysProcAttr = logf, logf, procAttr(nil)
	if err := w.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	w.pid = w.cmd.Process.Pid
	go func() { // owned by the fleet: kill and stop wait for done
		w.err = w.cmd.Wait()
		w.logf.Close()
		close(w.done)
	}()
	f.workers[i] = w
	if w.addr, err = w.waitListening(ctx, from); err != nil {
		w.killed = true
		_ = w.cmd.Process.Kill()
		<-w.done
		return nil, fmt.Errorf("%s did not start: %w\n%s", name, err, w.logTail(8))
	}
	return w, nil
}

// waitListening reads the worker's log from offset from until the
// {"msg":"http listening","addr":...} line.
func (w *worker) waitListening(ctx context.Context, from int64) (string, error) {
	deadline := time.After(2 * time.Minute)
	for {
		if addr := w.findAddr(from); addr != "" {
			return addr, nil
		}
		select {
		case <-w.done:
			return "", fmt.Errorf("exited: %v", w.err)
		case <-deadline:
			return "", errors.New("no \"http listening\" log line within 2 minutes")
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (w *worker) findAddr(from int64) string {
	f, err := os.Open(w.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return ""
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "http listening" && line.Addr != "" {
			return line.Addr
		}
	}
	return ""
}

// alive says whether the process is still running.
func (w *worker) alive() bool {
	select {
	case <-w.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to slot i and waits for it to end.
func (f *fleet) kill(i int) {
	w := f.workers[i]
	w.killed = true
	_ = w.cmd.Process.Kill()
	<-w.done
}

// stop sends SIGTERM to every running worker (a clean shutdown: flush,
// commit, leave the group) and waits up to timeout, then kills what is left.
// It returns the workers that did not exit cleanly. Idempotent.
func (f *fleet) stop(timeout time.Duration) []string {
	deadline := time.After(timeout)
	var unclean []string
	for _, w := range f.workers {
		if w != nil && w.alive() {
			_ = w.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, w := range f.workers {
		if w == nil || w.killed {
			continue
		}
		select {
		case <-w.done:
		case <-deadline:
			w.killed = true
			_ = w.cmd.Process.Kill()
			<-w.done
			unclean = append(unclean, w.name+" (killed after the shutdown budget)")
			continue
		}
		if w.err != nil {
			unclean = append(unclean, fmt.Sprintf("%s (%v)", w.name, w.err))
		}
		w.killed = true // reported once
	}
	return unclean
}

// crashed lists the workers that exited without the demo ending them.
func (f *fleet) crashed() []*worker {
	var out []*worker
	for _, w := range f.workers {
		if w != nil && !w.killed && !w.alive() {
			out = append(out, w)
		}
	}
	return out
}

// assigned scrapes the sinkworker_assigned_partitions gauge of every
// worker: -1 for one not running, 0 for one that does not answer.
func (f *fleet) assigned(ctx context.Context) []int {
	out := make([]int, len(f.workers))
	for i, w := range f.workers {
		out[i] = -1
		if w != nil && w.alive() {
			n, _ := f.scrape(ctx, w.addr, "sinkworker_assigned_partitions")
			out[i] = int(n)
		}
	}
	return out
}

// scrape reads one unlabelled metric from a worker's /metrics.
func (f *fleet) scrape(ctx context.Context, addr, metric string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(body) {
		if v, ok := strings.CutPrefix(string(bytes.TrimSpace(line)), metric+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", addr, metric)
}

// logTail is the last n lines of the worker's log that are warnings or
// errors, else its last n lines.
func (w *worker) logTail(n int) string {
	b, _ := os.ReadFile(w.logPath)
	var bad []byte
	for line := range bytes.Lines(b) {
		if bytes.Contains(line, []byte(`"level":"WARN"`)) || bytes.Contains(line, []byte(`"level":"ERROR"`)) {
			bad = append(bad, line...)
		}
	}
	if len(bad) > 0 {
		b = bad
	}
	return tail(b, n)
}
