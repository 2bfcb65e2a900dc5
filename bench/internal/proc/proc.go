// Package proc runs the bench harnesses' child processes (the sinkworker
// binary, bench/naive, Kafka Connect): each in its own process group, its
// stdout and stderr in a log file, stopped with SIGTERM and a grace period,
// and measured (exit status, CPU time, peak resident set).
//
//	p, err := proc.Start(bin, nil, proc.WorkerEnv(os.Environ(), ...), logPath)
//	if err != nil { ... }
//	defer p.Kill() // a no-op once it has exited
//	...
//	exit := p.Stop(time.Minute)
package proc

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/sinkworker/sinkworker/bench/internal/rss"
)

// Build compiles the package pkg (e.g. "./cmd/sinkworker") of the module
// at root into bin, its output on the harness's stderr.
func Build(ctx context.Context, root, pkg, bin string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}

// Proc is one running child process. Its methods may be called from any
// goroutine; the one that started it owns stopping it.
type Proc struct {
	// Cmd is the command; read Cmd.ProcessState only once Exited is closed.
	Cmd *exec.Cmd
	// Log is the file that holds its stdout and stderr.
	Log string

	exited chan struct{}
}

// Start runs bin with args and the environment env in a process group of
// its own, writing its output to a fresh file at logPath.
func Start(bin string, args, env []string, logPath string) (*Proc, error) {
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
	p := &Proc{Cmd: cmd, Log: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.exited) }()
	return p, nil
}

// Exited is closed once the process has exited and been waited for.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Done reports whether the process has exited.
func (p *Proc) Done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Exit is how a stopped process ended.
type Exit struct {
	Code    int           // exit status; -1 when a signal ended it
	Killed  bool          // it outlived the grace period and was killed
	CPU     time.Duration // user + system time
	PeakRSS int64         // its own peak resident set (VmHWM), bytes; 0 if it had exited already
}

// Stop sends SIGTERM and waits up to grace, then kills the process group.
// PeakRSS is read just before SIGTERM, not taken from rusage: on Linux exec
// records the forking parent's peak (the harness, holding its dataset) in
// the child's ru_maxrss.
func (p *Proc) Stop(grace time.Duration) Exit {
	e := Exit{PeakRSS: rss.Peak(p.Cmd.Process.Pid)}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM) // fails only when it has exited already
	select {
	case <-p.exited:
	case <-time.After(grace):
		e.Killed = true
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
	st := p.Cmd.ProcessState
	e.Code, e.CPU = st.ExitCode(), st.UserTime()+st.SystemTime()
	return e
}

// Kill kills the process group at once and waits for the process; it does
// nothing once the process has exited.
func (p *Proc) Kill() {
	if p.Done() {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// Lines are the non-blank lines of the log, trimmed; nil when it cannot be
// read.
func (p *Proc) Lines() []string {
	f, err := os.Open(p.Log)
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

// Tail is the last n lines of the log with its path, for an error message.
func (p *Proc) Tail(n int) string {
	ls := p.Lines()
	ls = ls[max(0, len(ls)-n):]
	return "log " + p.Log + " (last lines):\n  " + strings.Join(ls, "\n  ")
}

// FirstLines formats the first n of a log's lines for a report, after a
// count: ", first ones:" and each line in backticks, cut at 300 bytes; ""
// when there are none.
func FirstLines(lines []string, n int) string {
	if len(lines) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(", first ones:")
	for _, l := range lines[:min(n, len(lines))] {
		if len(l) > 300 {
			l = l[:300] + "..."
		}
		b.WriteString("\n  `" + strings.ReplaceAll(l, "`", "'") + "`")
	}
	return b.String()
}
