// Package testbed describes where a bench harness runs, for the head of its
// report: the module root, the machine, the database's settings, the code
// under test and the exact command line.
package testbed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ModuleRoot is the directory of the go.mod the go command sees from the
// working directory; an error outside a module.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("run from inside the sinkworker module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}

// Machine is e.g. "2 CPUs (AMD EPYC), 23.5 GiB memory, Linux 6.18.44, go1.26.8",
// from /proc; "?" for what it cannot read.
func Machine() string {
	model := firstField("/proc/cpuinfo", "model name")
	mem := firstField("/proc/meminfo", "MemTotal")
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d CPUs (%s), %s memory, Linux %s, %s", runtime.NumCPU(), model, humanKB(mem),
		strings.TrimSpace(string(kernel)), runtime.Version())
}

// Postgres is the server's version and the named settings, e.g.
// "PostgreSQL 15.18 (shared_buffers 128MB, fsync on), same machine".
func Postgres(ctx context.Context, db interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, settings ...string) (string, error) {
	var (
		version string
		values  []string
	)
	err := db.QueryRow(ctx, `SELECT current_setting('server_version'),
	array(SELECT current_setting(n) FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i) ORDER BY i)`, settings).Scan(&version, &values)
	if err != nil {
		return "", fmt.Errorf("read PostgreSQL settings: %w", err)
	}
	named := make([]string, len(settings))
	for i, s := range settings {
		named[i] = s + " " + values[i]
	}
	return fmt.Sprintf("PostgreSQL %s (%s), same machine", version, strings.Join(named, ", ")), nil
}

// Code is the commit checked out in root and the files with uncommitted
// changes outside bench/ (git status); empty strings when git cannot tell.
func Code(ctx context.Context, root string) (commit string, changed []string) {
	rev, _ := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	status, _ := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--", ".", ":!bench").Output()
	for line := range strings.SplitSeq(string(status), "\n") {
		if len(line) > 3 { // "XY path"
			changed = append(changed, line[3:])
		}
	}
	return strings.TrimSpace(string(rev)), changed
}

// Command is the command line that runs pkg (e.g. "./bench/suite") with
// args, quoted for a POSIX shell where needed.
func Command(pkg string, args []string) string {
	parts := []string{"go", "run", pkg}
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"$`\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// firstField is the value of the first "name : value" line of a /proc file.
func firstField(path, name string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// humanKB turns "24641132 kB" into "23.5 GiB"; anything else stays as is.
func humanKB(s string) string {
	var kb float64
	if _, err := fmt.Sscanf(s, "%f kB", &kb); err != nil {
		return s
	}
	return fmt.Sprintf("%.1f GiB", kb/(1<<20))
}
