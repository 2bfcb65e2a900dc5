package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/reconcile"
)

// reconcileCmd runs `sinkworker reconcile args...` with only env set.
func reconcileCmd(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"reconcile"}, args...)...)
	cmd.Env = testenv.ProcessEnv(env)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return out.String(), errOut.String(), code
}

// TestReconcileCommand: exit 0 for equal tables (settings from the
// environment, the source defaulting to DATABASE_URL), 1 with the
// differences listed, in a table and in JSON.
func TestReconcileCommand(t *testing.T) {
	testenv.WaitServicesIdle(t)
	pool := db(t)
	src, tgt := uniq("rc_s"), uniq("rc_t")
	for _, name := range []string{src, tgt} {
		dropTable(t, pool, name)
		_, err := pool.Exec(t.Context(), "CREATE TABLE "+name+" (id int PRIMARY KEY, v text); INSERT INTO "+name+" SELECT g, 'v' || g FROM generate_series(1, 5000) g")
		require.NoError(t, err)
	}
	env := map[string]string{"DATABASE_URL": dbURL, "RECONCILE_SOURCE_TABLE": src, "RECONCILE_TARGET_TABLE": tgt, "RECONCILE_KEY": "id"}
	out, errOut, code := reconcileCmd(t, env)
	assert.Equal(t, 0, code, "equal: %s%s", out, errOut)
	assert.Contains(t, out, "comparing v: equal")
	assert.Contains(t, out, "5000 source rows, 5000 target rows; 1 ranges checked")

	_, err := pool.Exec(t.Context(), "DELETE FROM "+tgt+" WHERE id = 7; UPDATE "+tgt+" SET v = NULL WHERE id = 4000; INSERT INTO "+tgt+" VALUES (9000, 'x')")
	require.NoError(t, err)
	out, errOut, code = reconcileCmd(t, env)
	assert.Equal(t, 1, code, "different: %s%s", out, errOut)
	for _, want := range []string{"missing     7", "extra       9000", "different   4000", "1 missing (in the source only), 1 extra (in the target only), 1 different"} {
		assert.Contains(t, out, want)
	}

	out, errOut, code = reconcileCmd(t, map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/x"},
		"--target", dbURL, "--source-table", src, "--target-table", tgt, "--key", "id", "-json")
	assert.Equal(t, 1, code, "flags win over the environment: %s", errOut)
	var r reconcile.Result
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	assert.Equal(t, [][]string{{"7"}}, r.Missing)
	assert.Equal(t, [][]string{{"9000"}}, r.Extra)
	assert.Equal(t, [][]string{{"4000"}}, r.Different)
	assert.Equal(t, int64(5000), r.SourceRows)
	assert.Positive(t, r.Source.Bytes)

	// Keys only: the changed value no longer counts.
	_, _, code = reconcileCmd(t, env, "--columns", "")
	assert.Equal(t, 1, code)
	out, _, _ = reconcileCmd(t, env, "--keys-only", "-json")
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	assert.Zero(t, r.DifferentCount)
	assert.Equal(t, int64(1), r.ExtraCount)
}

// TestReconcileSettings: every bad setting named at once, exit 2; a
// database that is not there, exit 3; never a password in the output.
func TestReconcileSettings(t *testing.T) {
	out, errOut, code := reconcileCmd(t, map[string]string{"RECONCILE_SOURCE_URL": "postgres://u:sekret@[::1/x"},
		"--keys-only", "--columns", "a", "--limit", "-5", "extra-arg")
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	for _, want := range []string{"unexpected arguments", "source database URL", "target database URL is required",
		"source table is required", "target table is required", "key is required", "exclude each other", "limit"} {
		assert.Contains(t, errOut, want)
	}
	assert.NotContains(t, errOut, "sekret")

	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.User = url.UserPassword("postgres", "sekret-pw")
	u.Host = "127.0.0.1:1" // nothing listens
	_, errOut, code = reconcileCmd(t, map[string]string{"DATABASE_URL": u.String()}, "--source-table", "a", "--target-table", "b", "--key", "id")
	assert.Equal(t, 3, code, errOut)
	assert.Contains(t, errOut, "database")
	assert.NotContains(t, errOut, "sekret")

	testenv.WaitServicesIdle(t)
	missing := uniq("rc_none")
	_, errOut, code = reconcileCmd(t, map[string]string{"DATABASE_URL": dbURL}, "--source-table", missing, "--target-table", "public."+missing, "--key", "id")
	assert.Equal(t, 2, code, errOut)
	assert.Contains(t, errOut, "source table "+missing+" does not exist")
	assert.Contains(t, errOut, "target table public."+missing+" does not exist")
}
