package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// TestHealthzDuringStartup: while start-up waits for a database that is
// not reachable yet, /healthz answers 200 (the process is alive) and
// /readyz 503; once the database answers, the worker starts and turns
// ready.
func TestHealthzDuringStartup(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic, table, group := ownTopic(t, 1), uniq("t"), ownGroup(t, pool)
	dropTable(t, pool, table)
	dbAddr, httpAddr := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	w := launch(t, "boot", map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table,
		"DATABASE_URL": dbURLVia(t, dbAddr), "HTTP_ADDR": httpAddr,
	}, binary)
	w.addr = httpAddr
	require.Eventually(t, func() bool {
		return testenv.LogField(w.logs, "database not reachable yet, retrying", "level") != ""
	}, 30*time.Second, 20*time.Millisecond, "start-up waits for the database")
	assert.Equal(t, http.StatusOK, httpStatus(w.addr, "/healthz"), "alive while starting")
	assert.Equal(t, http.StatusServiceUnavailable, w.readyz(), "not ready while starting")

	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	newCutProxy(t, dbAddr, u.Host) // the database becomes reachable
	require.Eventually(t, func() bool { return w.readyz() == http.StatusOK }, time.Minute, 50*time.Millisecond,
		"ready once the database answers and the worker joined")
	require.Eventually(t, func() bool { return testenv.LogField(w.logs, "consuming", "level") != "" },
		30*time.Second, 20*time.Millisecond, "start-up is over")
	w.stop()
}

// TestHTTPDisabled: HTTP_ADDR="" serves nothing: the worker consumes
// without a listening socket. The same check on a worker with HTTP_ADDR
// set finds its listener.
func TestHTTPDisabled(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic, table, group := ownTopic(t, 1), uniq("t"), ownGroup(t, pool)
	dropTable(t, pool, table)
	for _, addr := range []string{"127.0.0.1:0", ""} {
		w := launch(t, "http", map[string]string{
			"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table, "HTTP_ADDR": addr,
		}, binary)
		require.Eventually(t, func() bool { return testenv.LogField(w.logs, "consuming", "level") != "" },
			30*time.Second, 20*time.Millisecond, "the worker consumes")
		listening := listeningSockets(t, w.cmd.Process.Pid)
		if addr == "" {
			assert.Zero(t, listening, "HTTP_ADDR=\"\": no listening socket")
			assert.Empty(t, testenv.LogField(w.logs, "http listening", "addr"))
		} else {
			assert.Equal(t, 1, listening, "HTTP_ADDR=%s: the HTTP listener", addr)
		}
		w.stop()
	}
}

// TestCommandLine: `sinkworker version` prints the version; -h on every
// command prints its usage and exits 0; audit exits 2 for bad settings,
// naming each.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runBinary(t, nil, "version")
	assert.Equal(t, 0, code)
	assert.Regexp(t, `^sinkworker (\(devel\)|v\S+)\n$`, stdout)

	for _, args := range [][]string{{"-h"}, {"run", "-h"}, {"demo", "-h"}, {"audit", "-h"}, {"redrive", "-h"}, {"version", "-h"}} {
		code, stdout, stderr := runBinary(t, nil, args...)
		assert.Equal(t, 0, code, "sinkworker %s", strings.Join(args, " "))
		assert.Contains(t, stdout+stderr, "Usage", "sinkworker %s prints its usage", strings.Join(args, " "))
	}

	code, _, stderr := runBinary(t, map[string]string{
		"KAFKA_TOPICS": "audit_bad", "SINK_MODE": "merge", "BATCH_MAX_RECORDS": "lots",
	}, "audit")
	assert.Equal(t, 2, code, "audit with bad settings:\n%s", stderr)
	assert.Contains(t, stderr, "SINK_MODE")
	assert.Contains(t, stderr, "BATCH_MAX_RECORDS")
	code, _, stderr = runBinary(t, nil, "audit", "-no-such-flag")
	assert.Equal(t, 2, code, "audit with a bad flag:\n%s", stderr)
}

// TestVerifyFullOtherHost: with sslmode=verify-full the server's
// certificate must name the host in DATABASE_URL. Reached as 127.0.0.2
// (a proxy to the same PostgreSQL), which its certificate does not name,
// start-up stops with exit status 1 and the documented message, not a
// retry loop; verify-ca through the same address starts, so only the host
// was wrong.
func TestVerifyFullOtherHost(t *testing.T) {
	t.Parallel()
	s := securitySetup(t)
	pool := db(t)
	topic, table, group := ownTopic(t, 1), uniq("t"), ownGroup(t, pool)
	dropTable(t, pool, table)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	proxy := newCutProxy(t, "127.0.0.2:0", u.Host)
	via := func(mode string) string {
		return dbURLVia(t, proxy.addr()) + "&" + url.Values{"sslmode": {mode}, "sslrootcert": {s.ca}}.Encode()
	}
	env := map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table}

	code, out := exitRun(t, merge(env, map[string]string{"DATABASE_URL": via("verify-full")}), time.Minute)
	assert.Equal(t, 1, code, "output:\n%s", out)
	msg := failure(out)
	t.Logf("start-up error: %s", msg)
	assert.Contains(t, msg, "the server's TLS certificate is not trusted (check sslrootcert and the host in DATABASE_URL)")
	assert.Contains(t, msg, "127.0.0.2")
	assert.NotContains(t, out, "database not reachable yet", "not mistaken for an outage")

	w := startWorker(t, "w1", merge(env, map[string]string{"DATABASE_URL": via("verify-ca")}))
	w.stop()
}

// runBinary runs the binary with args and workerEnv, and returns
// its exit status, stdout and stderr.
func runBinary(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = workerEnv("cli", env)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "sinkworker %v did not exit", args)
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), o.String(), e.String()
	}
	require.NoError(t, err)
	return 0, o.String(), e.String()
}

// httpStatus is the status code of GET http://addr/path, 0 when nothing
// answers.
func httpStatus(addr, path string) int {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// listeningSockets counts the process's TCP sockets in the LISTEN state.
func listeningSockets(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	require.NoError(t, err)
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && fields[3] == "0A" && inodes[fields[9]] {
				n++
			}
		}
		f.Close()
	}
	return n
}

// TestStandardConformingStringsOff: a database session with
// standard_conforming_strings off (here from options in DATABASE_URL),
// where the batch transaction's simple query could not run, stops start-up
// with exit status 2 naming the setting, instead of failing every batch.
func TestStandardConformingStringsOff(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topic, table, group := ownTopic(t, 1), uniq("t"), ownGroup(t, pool)
	dropTable(t, pool, table)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.RawQuery += "&options=-c%20standard_conforming_strings%3Doff" // %20, not the + of url.Values
	code, _, stderr := runBinary(t, map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group,
		"SINK_TABLE_MAP": topic + "=" + table, "DATABASE_URL": u.String()})
	assert.Equal(t, 2, code, "stderr:\n%s", stderr)
	assert.Contains(t, stderr, "standard_conforming_strings=off")
}
