package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// What the test reads of a worker: its /metrics and its JSON log.

// metric is the value of the first /metrics line starting with prefix, or
// "?" when the process does not answer.
func metric(p *proc, prefix string) string {
	addr, _, _, _, _ := p.state()
	resp, err := metricsClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			f := strings.Fields(sc.Text())
			return f[len(f)-1]
		}
	}
	return "0"
}

var metricsClient = &http.Client{Timeout: 300 * time.Millisecond}

// assigned scrapes the sinkworker_assigned_partitions gauge. A stopped or
// dying process does not answer in time.
func (p *proc) assigned() (int, error) {
	addr, _, _, _, _ := p.state()
	if addr == "" {
		return 0, fmt.Errorf("%v: not listening yet", p)
	}
	resp, err := metricsClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "sinkworker_assigned_partitions "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%v: no sinkworker_assigned_partitions in /metrics", p)
}

// logField is field of the first JSON log line whose msg is msg.
func logField(path, msg, field string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
			s, _ := line[field].(string)
			return s
		}
	}
	return ""
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
