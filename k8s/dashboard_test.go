package k8s_test

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const dashboardPath = "grafana/sinkworker-dashboard.json"

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Definition string          `json:"definition"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

func readDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(data, &d), "the dashboard is JSON")
	return d, data
}

// expressions returns every PromQL expression of the dashboard: panel
// targets and template variable queries.
func expressions(d dashboard) []string {
	var out []string
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, v.Definition)
		}
	}
	return out
}

// TestDashboardPanels checks the dashboard's shape: unique ids, a target
// with an expression on every panel, the datasource variable, and a grid
// that fits 24 columns.
func TestDashboardPanels(t *testing.T) {
	t.Parallel()
	d, _ := readDashboard(t)
	assert.NotEmpty(t, d.Title)
	assert.NotEmpty(t, d.UID)
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			assert.False(t, ids[p.ID], "panel id %d is unique (%q)", p.ID, p.Title)
			ids[p.ID] = true
			assert.NotEmpty(t, p.Title, "panel %d has a title", p.ID)
			assert.Positive(t, p.GridPos.W, p.Title)
			assert.Positive(t, p.GridPos.H, p.Title)
			assert.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, p.Title)
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			require.NotNil(t, p.Datasource, p.Title)
			assert.Equal(t, "${datasource}", p.Datasource.UID, p.Title)
			require.NotEmpty(t, p.Targets, p.Title)
			for _, tg := range p.Targets {
				assert.NotEmpty(t, tg.Expr, p.Title)
				assert.NotEmpty(t, tg.RefID, p.Title)
			}
		}
	}
	walk(d.Panels)

	// Every $variable used is defined or one of Grafana's own.
	builtin := []string{"__rate_interval", "__range", "__interval"}
	varRE := regexp.MustCompile(`\$\{?([A-Za-z_]+)`)
	for _, e := range expressions(d) {
		for _, m := range varRE.FindAllStringSubmatch(e, -1) {
			assert.True(t, slices.Contains(vars, m[1]) || slices.Contains(builtin, m[1]), "%q: $%s is not defined", e, m[1])
		}
	}
}

var (
	contractNameRE = regexp.MustCompile(`sinkworker_[a-z_]+`)
	// A metric name followed by a selector: name{labels}.
	selectorRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	byRE       = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// family resolves a series name to its family in the contract or the
// standard collectors: a histogram's _bucket, _sum and _count series
// resolve to the histogram.
func family(name string) (string, metric, bool) {
	all := func(n string) (metric, bool) {
		if m, ok := contractMetrics[n]; ok {
			return m, true
		}
		m, ok := collectorMetrics[n]
		return m, ok
	}
	if m, ok := all(name); ok {
		return name, m, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if m, ok := all(base); ok && m.Type == "histogram" {
				return base, m, true
			}
		}
	}
	return "", metric{}, false
}

// TestDashboardMetrics checks that every metric name the dashboard mentions
// (in expressions, titles or descriptions) is one the binary exports, that
// selectors and groupings use the families' labels, and that every metric of
// the contract appears on some panel.
func TestDashboardMetrics(t *testing.T) {
	t.Parallel()
	d, raw := readDashboard(t)

	// Anywhere in the file, even in descriptions, a sinkworker_ name must be real.
	for _, name := range contractNameRE.FindAllString(string(raw), -1) {
		_, _, ok := family(name)
		assert.True(t, ok, "%s is not a metric of the contract (metrics_test.go)", name)
	}

	used := map[string]bool{}
	for _, e := range expressions(d) {
		require.NoError(t, balanced(e), "%q", e)
		names := contractNameRE.FindAllString(e, -1) // bare names too, as in label_values(name, label)
		for _, name := range names {
			if fam, _, ok := family(name); ok {
				used[fam] = true
			}
		}
		sels := selectorRE.FindAllStringSubmatch(e, -1)
		assert.True(t, len(names) > 0 || len(sels) > 0, "%q: every expression reads a metric", e)
		labels := slices.Clone(targetLabels)
		for _, s := range sels {
			fam, m, ok := family(s[1])
			if !assert.True(t, ok, "%q: %s is not a metric the binary exports", e, s[1]) {
				continue
			}
			used[fam] = true
			own := slices.Concat(m.Labels, targetLabels)
			if strings.HasSuffix(s[1], "_bucket") {
				own = append(own, "le")
			}
			labels = append(labels, own...)
			for _, mt := range matcherRE.FindAllStringSubmatch(s[2], -1) {
				label, op, value := mt[1], mt[2], mt[3]
				assert.Contains(t, own, label, "%q: %s has no label %s", e, fam, label)
				allowed, closed := m.Values[label]
				if !closed || strings.Contains(value, "$") {
					continue
				}
				for _, v := range strings.Split(value, "|") {
					if op == "=" || op == "=~" {
						assert.Contains(t, allowed, v, "%q: %s never has %s=%q", e, fam, label, v)
					}
				}
			}
		}
		for _, by := range byRE.FindAllStringSubmatch(e, -1) {
			for l := range strings.SplitSeq(by[1], ",") {
				if l = strings.TrimSpace(l); l != "" {
					assert.Contains(t, labels, l, "%q: no metric here has label %s", e, l)
				}
			}
		}
	}
	for name := range contractMetrics {
		assert.True(t, used[name], "no panel shows %s", name)
	}
}

// balanced reports unbalanced brackets outside string literals.
func balanced(expr string) error {
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	var stack []rune
	inString := false
	for _, r := range expr {
		switch {
		case r == '"':
			inString = !inString
		case inString:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return errUnbalanced
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 || inString {
		return errUnbalanced
	}
	return nil
}

var errUnbalanced = errors.New("unbalanced brackets or quotes")
