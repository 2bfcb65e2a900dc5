package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// What the test reads of a worker's /metrics (testenv reads its JSON log).

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

// backingOff reports whether p's /readyz answers not ready because a
// partition backs off from a transient error (not, say, because it has not
// joined the group yet).
func backingOff(p *proc) bool {
	addr, _, _, _, _ := p.state()
	resp, err := metricsClient.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "backing off")
}

// assigned scrapes the sinkworker_assigned_partitions gauge. A stopped or
// dying process does not answer in time.
func (p *proc) assigned() (int, error) {
	addr, _, _, _, _ := p.state()
	if addr == "" {
		return 0, fmt.Errorf("%v: not listening yet", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), metricsClient.Timeout)
	defer cancel()
	return testenv.AssignedPartitions(ctx, addr)
}

// transientRetries is each answering worker's
// sinkworker_retries_total{class="transient"}.
func (r *run) transientRetries() map[string]float64 {
	out := map[string]float64{}
	for _, p := range r.fleet.sampleable() {
		if v, err := strconv.ParseFloat(metric(p, `sinkworker_retries_total{class="transient"}`), 64); err == nil {
			out[p.String()] = v
		}
	}
	return out
}

// sawOutage polls the workers, for at most within, until one of them
// retried a transaction since before or reports not-ready while backing
// off, and says which; "" when none did.
func (r *run) sawOutage(before map[string]float64, within time.Duration) string {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for p, n := range r.transientRetries() {
			if n > before[p] {
				return fmt.Sprintf("%s retried %v times", p, n-before[p])
			}
		}
		for _, p := range r.fleet.sampleable() {
			if backingOff(p) {
				return p.String() + " not ready, backing off"
			}
		}
	}
	return ""
}
