package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	embeddedpostgres "github.com/fergusstrange/embedded-postgres"
	"github.com/jackc/pgx/v5"
)

// tempDB is a throwaway PostgreSQL cluster in a temporary directory.
type tempDB struct {
	url  string
	desc string // what was used, for the user
	stop func() // stops the server and removes its directory; idempotent
}

// pgSettings suit a throwaway cluster: nothing here must survive a power cut.
var pgSettings = map[string]string{
	"listen_addresses":   "127.0.0.1",
	"fsync":              "off",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
	"max_connections":    "200",
}

// startTempDB starts a temporary PostgreSQL: with the installed binaries
// when there are any (and mode allows), else with embedded-postgres, which
// fetches binaries from Maven Central and caches them in
// ~/.embedded-postgres-go. logDir receives embedded-postgres's log.
func startTempDB(ctx context.Context, mode, logDir string) (*tempDB, error) {
	var errs []error
	if mode != PostgresEmbedded {
		bin, err := installedBinDir()
		if err == nil {
			db, err := startInstalled(ctx, bin)
			if err == nil {
				return db, nil
			}
			errs = append(errs, fmt.Errorf("installed PostgreSQL in %s: %w", bin, err))
		} else {
			errs = append(errs, err)
		}
	}
	if mode != PostgresInstalled {
		db, err := startEmbedded(ctx, logDir)
		if err == nil {
			return db, nil
		}
		errs = append(errs, fmt.Errorf("embedded-postgres: %w", err))
	}
	return nil, fmt.Errorf("no PostgreSQL could be started (set DATABASE_URL to use one):\n%w", errors.Join(errs...))
}

// installedBinDir finds a directory with initdb and postgres: PATH, then
// pg_config --bindir, then the distributions' versioned directories,
// newest version first.
func installedBinDir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil // /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	var dirs []string
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin",
		"/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin", "/usr/local/pgsql/bin"} {
		m, _ := filepath.Glob(pattern)
		dirs = append(dirs, m...)
	}
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", errors.New("no installed PostgreSQL binaries (initdb, postgres) found")
}

// versionOf is the first number in a path such as /usr/lib/postgresql/15/bin.
func versionOf(path string) int {
	for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r < '0' || r > '9' }) {
		if n, err := strconv.Atoi(part); err == nil {
			return n
		}
	}
	return 0
}

// runUser is the unprivileged user PostgreSQL runs as when the demo runs as
// root (PostgreSQL refuses root).
type runUser struct {
	name     string
	uid, gid uint32
}

// runAs is "postgres", else "nobody", when running as root; nil otherwise.
func runAs() (*runUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil {
			return &runUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
		}
	}
	return nil, errors.New("running as root and there is no postgres or nobody user to run PostgreSQL as")
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady connects until the server answers, the process ends (exited
// is closed) or ctx ends.
func waitReady(ctx context.Context, url string, exited <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-exited:
			return errors.New("the server exited during start-up")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startEmbedded starts PostgreSQL 16 with embedded-postgres in a
// temporary directory. PostgreSQL refuses to run as root, and
// embedded-postgres has no way to switch users, so root cannot use it.
func startEmbedded(ctx context.Context, logDir string) (*tempDB, error) {
	if os.Geteuid() == 0 {
		return nil, errors.New("cannot run as root (PostgreSQL refuses root); install PostgreSQL or run as another user")
	}
	dir, err := os.MkdirTemp("", "sinkworker-demo-pg-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logf, err := os.Create(filepath.Join(logDir, "embedded-postgres.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cfg := embeddedpostgres.DefaultConfig().Version(embeddedpostgres.V16).Port(uint32(port)).
		RuntimePath(dir).DataPath(filepath.Join(dir, "data")).
		StartParameters(pgSettings).StartTimeout(60 * time.Second).Logger(logf)
	pg := embeddedpostgres.NewDatabase(cfg)
	if err := pg.Start(); err != nil { // downloads on first use; not cancellable
		logf.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	stopped := false
	db := &tempDB{
		url:  fmt.Sprintf("postgres://postgres:postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		desc: fmt.Sprintf("embedded-postgres %s, temporary cluster on 127.0.0.1:%d", embeddedpostgres.V16, port),
		stop: func() {
			if !stopped {
				stopped = true
				_ = pg.Stop()
				logf.Close()
				os.RemoveAll(dir)
			}
		},
	}
	if err := ctx.Err(); err != nil {
		db.stop()
		return nil, err
	}
	return db, nil
}
