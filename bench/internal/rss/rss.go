// Package rss reads a process's peak resident set for the bench harnesses.
package rss

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Peak is a running process's peak resident set (VmHWM in
// /proc/<pid>/status), bytes; 0 when it cannot be read. The harnesses use
// it rather than the child's rusage: on Linux exec records the forking
// parent's peak (the harness, holding its dataset) in the child's ru_maxrss.
func Peak(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}
