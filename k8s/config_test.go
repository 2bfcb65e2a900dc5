package k8s_test

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/sink"
)

// requiredVars have no default: the worker exits 2 without them.
var requiredVars = []string{"KAFKA_BROKERS", "KAFKA_TOPICS", "DATABASE_URL"}

// partitionsAnnotation states, on the overlay's ScaledObject, the partition
// count of the topic its trigger watches.
const partitionsAnnotation = "sinkworker/topic-partitions"

// configVars maps every environment variable of sink.Config (nested structs
// included) to its default ("" when it has none), read from the `env` tags.
func configVars(t *testing.T) map[string]string {
	t.Helper()
	vars := map[string]string{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag, ok := f.Tag.Lookup("env")
			name, opts, _ := strings.Cut(tag, ",")
			name = strings.TrimSpace(name)
			if name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				require.False(t, ok && strings.Contains(opts, "prefix="), "%s: env prefixes are not handled here", f.Name)
				if ft.Kind() == reflect.Struct {
					walk(ft)
				}
				continue
			}
			require.NotContains(t, vars, name, "%s declared twice", name)
			vars[name] = ""
			for opt := range strings.SplitSeq(opts, ",") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(opt), "default="); ok {
					vars[name] = v
				}
			}
		}
	}
	walk(reflect.TypeFor[sink.Config]())
	// The walk must have reached the nested structs, or the checks below prove nothing.
	for _, v := range []string{"KAFKA_BROKERS", "DATABASE_URL", "KAFKA_SASL_PASSWORD", "KAFKA_TLS_CA_FILE", "BATCH_LINGER", "POOL_MAX_CONNS"} {
		require.Contains(t, vars, v, "sink.Config tags")
	}
	return vars
}

// podEnv is what the Deployment's container gets: literal values from its
// ConfigMaps and env entries, and the names of variables set from Secrets.
type podEnv struct {
	values  map[string]string
	secrets map[string]bool // name -> optional
}

func (e podEnv) names() []string {
	var out []string
	for k := range e.values {
		out = append(out, k)
	}
	for k := range e.secrets {
		out = append(out, k)
	}
	return out
}

func containerEnv(t *testing.T, r rendered) podEnv {
	t.Helper()
	e := podEnv{values: map[string]string{}, secrets: map[string]bool{}}
	c := r.deployment.Spec.Template.Spec.Containers[0]
	for _, ef := range c.EnvFrom {
		require.NotNil(t, ef.ConfigMapRef)
		cm := r.configMaps[ef.ConfigMapRef.Name]
		require.NotNil(t, cm, "ConfigMap %s", ef.ConfigMapRef.Name)
		for k, v := range cm.Data {
			e.values[ef.Prefix+k] = v
		}
	}
	for _, ev := range c.Env {
		switch {
		case ev.ValueFrom == nil:
			e.values[ev.Name] = ev.Value
		case ev.ValueFrom.SecretKeyRef != nil:
			e.secrets[ev.Name] = ev.ValueFrom.SecretKeyRef.Optional != nil && *ev.ValueFrom.SecretKeyRef.Optional
		default:
			t.Errorf("env %s: only literal values and secretKeyRef are expected", ev.Name)
		}
	}
	return e
}

// TestNoDriftWithConfig checks that every variable the manifests set is a
// setting of sink.Config, and that the overlay's final output sets every
// required one, with values the worker accepts.
func TestNoDriftWithConfig(t *testing.T) {
	t.Parallel()
	vars := configVars(t)
	for _, dir := range []string{baseDir, overlayDir} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			r := build(t, dir)
			for _, cm := range r.configMaps {
				for k := range cm.Data {
					assert.Contains(t, vars, k, "ConfigMap %s: %s is not a variable of sink.Config", cm.Name, k)
				}
			}
			for _, name := range containerEnv(t, r).names() {
				assert.Contains(t, vars, name, "env %s is not a variable of sink.Config", name)
			}
		})
	}

	t.Run("overlay sets the required variables", func(t *testing.T) {
		t.Parallel()
		e := containerEnv(t, build(t, overlayDir))
		for _, v := range requiredVars {
			_, literal := e.values[v]
			optional, fromSecret := e.secrets[v]
			assert.True(t, literal || (fromSecret && !optional), "%s must be set (a required Secret key counts)", v)
		}
		cfg := loadConfig(t, e)
		assert.NotEmpty(t, cfg.Brokers)
		assert.NotEmpty(t, cfg.Topics)
	})
}

// loadConfig runs the worker's own LoadConfig (parsing and Validate) on the
// pod's environment, with a stand-in for each required Secret value.
func loadConfig(t *testing.T, e podEnv) sink.Config {
	t.Helper()
	env := map[string]string{}
	for k, v := range e.values {
		env[k] = v
	}
	for k, optional := range e.secrets {
		if optional {
			continue
		}
		switch k {
		case "DATABASE_URL":
			env[k] = "postgres://sinkworker:secret@db.example:5432/sinkworker?sslmode=verify-full"
		default:
			t.Fatalf("no stand-in value for the required Secret key %s", k)
		}
	}
	cfg, err := sink.LoadConfig(t.Context(), envconfig.MapLookuper(env))
	require.NoError(t, err, "the overlay's settings must pass the worker's validation")
	return cfg
}

// TestShutdownAndScaling checks terminationGracePeriodSeconds against
// SHUTDOWN_TIMEOUT, and the overlay's KEDA settings against its topic.
func TestShutdownAndScaling(t *testing.T) {
	t.Parallel()
	vars := configVars(t)
	for _, dir := range []string{baseDir, overlayDir} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			r := build(t, dir)
			raw, ok := containerEnv(t, r).values["SHUTDOWN_TIMEOUT"]
			if !ok {
				raw = vars["SHUTDOWN_TIMEOUT"]
			}
			shutdown, err := time.ParseDuration(raw)
			require.NoError(t, err, "SHUTDOWN_TIMEOUT")
			grace := r.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds
			require.NotNil(t, grace, "terminationGracePeriodSeconds")
			// After SHUTDOWN_TIMEOUT the worker still has up to 5s for the
			// final Kafka commit, then leaves the group and closes the pool.
			assert.Greater(t, time.Duration(*grace)*time.Second, shutdown+5*time.Second,
				"terminationGracePeriodSeconds must exceed SHUTDOWN_TIMEOUT (%s) and the final commit", shutdown)
		})
	}

	t.Run("overlay scales to the partition count", func(t *testing.T) {
		t.Parallel()
		r := build(t, overlayDir)
		so := r.scaledObject
		stated, ok := so.Annotations[partitionsAnnotation]
		require.True(t, ok, "the overlay states its topic's partition count in %s", partitionsAnnotation)
		partitions, err := strconv.Atoi(stated)
		require.NoError(t, err)
		require.Positive(t, partitions)
		assert.EqualValues(t, partitions, *so.Spec.MaxReplicaCount, "maxReplicaCount = partitions: more members sit idle")
		assert.LessOrEqual(t, *so.Spec.MinReplicaCount, *so.Spec.MaxReplicaCount)

		cfg := loadConfig(t, containerEnv(t, r))
		md := so.Spec.Triggers[0].Metadata
		assert.Equal(t, strings.Join(cfg.Brokers, ","), md["bootstrapServers"], "trigger brokers = KAFKA_BROKERS")
		assert.Equal(t, cfg.Group, md["consumerGroup"], "trigger group = KAFKA_GROUP")
		assert.Contains(t, cfg.Topics, md["topic"], "trigger topic is in KAFKA_TOPICS")
		assert.Equal(t, cfg.StartOffset, md["offsetResetPolicy"], "lag of an uncommitted partition counted as the worker starts")
		lag, err := strconv.Atoi(md["lagThreshold"])
		require.NoError(t, err, "lagThreshold")
		assert.Positive(t, lag)
		assert.NotEqual(t, "true", md["allowIdleConsumers"], "idle members hold nothing and do nothing")
	})
}
