package main

import (
	"bufio"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// TestMemoryLimit: in a container with a memory limit the worker sets
// GOMEMLIMIT to 90% of it; an explicit GOMEMLIMIT wins; AUTOMEMLIMIT=off
// leaves Go's default (no limit). The container is a memory cgroup with a
// 512 MiB limit that the test makes under its own and starts the worker
// in; the limit the Go runtime applies is read back from the worker's
// /metrics (go_gc_gomemlimit_bytes).
func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	const limit = 512 << 20
	cgroup := memoryCgroup(t, limit)
	pool := db(t)
	topic, table, group := ownTopic(t, 1), uniq("t"), ownGroup(t, pool)
	dropTable(t, pool, table)
	for _, tc := range []struct {
		name   string
		env    map[string]string
		want   float64
		logged bool // the worker logs "memory limit"
	}{
		{"90% of the container's limit", nil, limit * 9 / 10, true},
		{"an explicit GOMEMLIMIT wins", map[string]string{"GOMEMLIMIT": "300MiB"}, 300 << 20, true},
		{"AUTOMEMLIMIT=off", map[string]string{"AUTOMEMLIMIT": "off"}, math.MaxInt64, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := merge(map[string]string{"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table}, tc.env)
			// The shell moves itself into the cgroup, then becomes the worker.
			w := launch(t, "mem", env, "/bin/sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$1"`, cgroup, binary)
			w.listening(t)
			require.Contains(t, readFile(t, "/proc/"+strconv.Itoa(w.cmd.Process.Pid)+"/cgroup"),
				"/"+filepath.Base(cgroup)+"\n", "the worker runs in the test's cgroup")
			assert.Equal(t, tc.want, w.series(t, "go_gc_gomemlimit_bytes", "", ""), "the Go runtime's memory limit")
			assert.Equal(t, tc.logged, testenv.LogField(w.logs, "memory limit", "level") != "", "the memory limit is logged")
			w.stop()
		})
	}
}

// memoryCgroup makes a memory cgroup limited to limit bytes under the
// test process's own (cgroup v1 or v2), removed after the test (once the
// processes in it are gone), and returns its directory.
func memoryCgroup(t *testing.T, limit int64) string {
	t.Helper()
	path, v2 := "", false
	for _, line := range strings.Split(readFile(t, "/proc/self/cgroup"), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" && path == "" {
			path, v2 = parts[2], true // cgroup v2, unless a v1 memory controller follows
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				path, v2 = parts[2], false
			}
		}
	}
	require.NotEmpty(t, path, "no cgroup in /proc/self/cgroup: the memory test needs cgroups")
	mount, root := "", ""
	f, err := os.Open("/proc/self/mountinfo")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+3 >= len(fields) {
			continue
		}
		fsType, super := fields[sep+1], fields[sep+3]
		if (v2 && fsType == "cgroup2") || (!v2 && fsType == "cgroup" && strings.Contains(","+super+",", ",memory,")) {
			mount, root = fields[4], fields[3]
			break
		}
	}
	require.NotEmpty(t, mount, "no memory cgroup mount in /proc/self/mountinfo")
	rel, err := filepath.Rel(root, path)
	require.NoError(t, err)
	dir := filepath.Join(mount, rel, "sinkworker-test-"+testenv.Suffix())
	require.NoError(t, os.Mkdir(dir, 0o755), "creating a memory cgroup needs root and a writable cgroup tree")
	t.Cleanup(func() { _ = os.Remove(dir) })
	file := "memory.limit_in_bytes"
	if v2 {
		file = "memory.max"
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatInt(limit, 10)), 0o644),
		"setting %s (cgroup v2 needs the memory controller in the parent's cgroup.subtree_control)", file)
	return dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
