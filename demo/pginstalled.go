package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// startInstalled runs initdb and postgres from bin in a temporary
// directory, as an unprivileged user when the demo runs as root. postgres
// is a direct child, stopped with a fast shutdown by the returned stop.
func startInstalled(ctx context.Context, bin string) (*tempDB, error) {
	as, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sinkworker-demo-pg-")
	if err != nil {
		return nil, err
	}
	if as != nil {
		if err := os.Chown(dir, int(as.uid), int(as.gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir, initdb.SysProcAttr = dir, procAttr(as)
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, tail(out, 5))
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	srv, err := startPostgres(filepath.Join(bin, "postgres"), dir, data, port, as)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	version, _ := exec.Command(filepath.Join(bin, "postgres"), "--version").Output()
	// "postgres (PostgreSQL) 15.18 (Debian ...)" -> "PostgreSQL 15.18"
	v := strings.Fields(strings.ReplaceAll(string(version), "(PostgreSQL)", "PostgreSQL"))
	desc := fmt.Sprintf("installed %s in %s, temporary cluster on 127.0.0.1:%d",
		strings.Join(v[min(1, len(v)):min(3, len(v))], " "), bin, port)
	if as != nil {
		desc += " run as user " + as.name
	}
	db := &tempDB{url: url, desc: desc, stop: srv.stopper(dir)}
	if err := waitReady(ctx, url, srv.exited, time.Minute); err != nil {
		db.stop()
		log, _ := os.ReadFile(srv.logPath)
		return nil, fmt.Errorf("postgres: %w\n%s", err, tail(log, 10))
	}
	return db, nil
}

// server is a running postgres process.
type server struct {
	cmd     *exec.Cmd
	logf    *os.File
	logPath string
	exited  chan struct{} // closed when the process has exited and been waited for
}

// startPostgres starts postgres on 127.0.0.1:port with its socket in dir,
// logging to dir/postgres.log.
func startPostgres(binary, dir, data string, port int, as *runUser) (*server, error) {
	s := &server{logPath: filepath.Join(dir, "postgres.log"), exited: make(chan struct{})}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", dir}
	for k, v := range pgSettings {
		args = append(args, "-c", k+"="+v)
	}
	// Not CommandContext: the server outlives a cancelled start-up context
	// and is stopped gracefully, after the workers, by stopper.
	cmd := exec.Command(binary, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.SysProcAttr = dir, logf, logf, procAttr(as)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s.cmd, s.logf = cmd, logf
	go func() { // owned by stopper, which waits for exited
		_ = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// stopper stops the server with a fast shutdown (SIGINT: roll back open
// transactions, disconnect clients), killing it after 15 s, then removes
// dir. The returned func is idempotent.
func (s *server) stopper(dir string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = s.cmd.Process.Signal(os.Interrupt)
			select {
			case <-s.exited:
			case <-time.After(15 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exited
			}
			s.logf.Close()
			os.RemoveAll(dir)
		})
	}
}

// tail is the last n lines of b, for error messages.
func tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
