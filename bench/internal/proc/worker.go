package proc

import (
	"fmt"
	"strings"
)

// WorkerEnv is the environment of a sinkworker child: base (the harness's
// environment) without any sinkworker setting, then the run's own settings
// (brokers, database, topic, group, the table map, an ephemeral HTTP port,
// LOG_LEVEL=warn), then extra KEY=VALUE entries, which win over the rest.
func WorkerEnv(base, brokers []string, dsn, topic, group, table string, extra ...string) []string {
	var env []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !workerSetting(k) {
			env = append(env, kv)
		}
	}
	env = append(env,
		"KAFKA_BROKERS="+strings.Join(brokers, ","),
		"DATABASE_URL="+dsn,
		"KAFKA_TOPICS="+topic,
		"KAFKA_GROUP="+group,
		"SINK_TABLE_MAP="+topic+"="+table,
		"HTTP_ADDR=127.0.0.1:0",
		"LOG_LEVEL=warn",
	)
	return append(env, extra...) // later entries win
}

// workerSetting reports whether k is one of the worker's settings.
func workerSetting(k string) bool {
	for _, p := range []string{"KAFKA_", "SINK_", "BATCH_", "POOL_", "LOG_", "SCHEMA_REGISTRY_"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	switch k {
	case "DATABASE_URL", "ERROR_POLICY", "DLQ_TOPIC", "HTTP_ADDR", "SHUTDOWN_TIMEOUT":
		return true
	}
	return false
}

// EnvFlag is the harnesses' repeatable -env KEY=VALUE flag: extra settings
// for the worker, passed to WorkerEnv after the run's own.
type EnvFlag []string

func (e *EnvFlag) String() string { return strings.Join(*e, " ") }

// Set adds one KEY=VALUE.
func (e *EnvFlag) Set(s string) error {
	k, _, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	*e = append(*e, s)
	return nil
}
