package k8s_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The kustomizations under test: the base and every overlay.
const (
	baseDir    = "base"
	overlayDir = "overlays/example"
)

// serviceMonitor covers the fields of monitoring.coreos.com/v1 ServiceMonitor
// that the manifests use; anything else fails the strict decode.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// scaledObject covers the fields of keda.sh/v1alpha1 ScaledObject that the
// manifests use. Trigger metadata is map[string]string as in KEDA: a YAML
// boolean or number there fails the decode, as KEDA would reject it.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			Name       string `json:"name"`
			Kind       string `json:"kind,omitempty"`
			APIVersion string `json:"apiVersion,omitempty"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

// newObject returns an empty typed object for apiVersion and kind.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &serviceMonitor{}, true
	case "keda.sh/v1alpha1 ScaledObject":
		return &scaledObject{}, true
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		return &types.Kustomization{}, true
	}
	return nil, false
}

// decodeStrict decodes one YAML object into its API type, failing on an
// unknown kind, an unknown field, a duplicate field or a wrong value type.
func decodeStrict(t *testing.T, name string, data []byte) any {
	t.Helper()
	var tm metav1.TypeMeta
	require.NoError(t, yaml.Unmarshal(data, &tm), name)
	obj, ok := newObject(tm.APIVersion, tm.Kind)
	require.True(t, ok, "%s: no API type for %s %s: add one to newObject", name, tm.APIVersion, tm.Kind)
	require.NoError(t, yaml.UnmarshalStrict(data, obj), "%s: %s %s", name, tm.APIVersion, tm.Kind)

	// yaml.UnmarshalStrict turns a YAML boolean or number into a string where
	// the Go field is one; the API server does not (ConfigMap data, KEDA
	// trigger metadata). Decode the plain JSON form too, without coercion.
	j, err := yaml.YAMLToJSONStrict(data)
	require.NoError(t, err, name)
	again, _ := newObject(tm.APIVersion, tm.Kind)
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(again), "%s: a value of the wrong type (quote strings such as \"false\" and \"12\")", name)
	return obj
}

// rendered is the decoded output of one kustomize build.
type rendered struct {
	kinds          []string
	deployment     *appsv1.Deployment
	configMaps     map[string]*corev1.ConfigMap // by final name
	service        *corev1.Service
	pdb            *policyv1.PodDisruptionBudget
	serviceMonitor *serviceMonitor
	scaledObject   *scaledObject
}

// kustomizeMu serialises kustomize runs: krusty keeps package-level state
// (its OpenAPI schema and plugin registries) that concurrent runs race on,
// which `go test -race` reports when parallel tests build at the same time.
var kustomizeMu sync.Mutex

// build runs kustomize (as a library, like `kustomize build dir`) and
// decodes every resource strictly.
func build(t *testing.T, dir string) rendered {
	t.Helper()
	abs, err := filepath.Abs(dir)
	require.NoError(t, err)
	type doc struct {
		kind, name string
		yaml       []byte
	}
	docs := func() []doc {
		kustomizeMu.Lock()
		defer kustomizeMu.Unlock()
		rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
		require.NoError(t, err, "kustomize build %s", dir)
		var docs []doc
		for _, res := range rm.Resources() {
			data, err := res.AsYAML()
			require.NoError(t, err)
			docs = append(docs, doc{res.GetKind(), res.GetName(), data})
		}
		return docs
	}()

	r := rendered{configMaps: map[string]*corev1.ConfigMap{}}
	for _, d := range docs {
		name := dir + ": " + d.kind + "/" + d.name
		r.kinds = append(r.kinds, d.kind)
		switch obj := decodeStrict(t, name, d.yaml).(type) {
		case *appsv1.Deployment:
			require.Nil(t, r.deployment, "%s: one Deployment expected", dir)
			r.deployment = obj
		case *corev1.ConfigMap:
			r.configMaps[obj.Name] = obj
		case *corev1.Service:
			r.service = obj
		case *policyv1.PodDisruptionBudget:
			r.pdb = obj
		case *serviceMonitor:
			r.serviceMonitor = obj
		case *scaledObject:
			r.scaledObject = obj
		default:
			t.Fatalf("%s: unexpected object %T in the build output", name, obj)
		}
	}
	return r
}

// TestManifestFilesDecodeStrictly decodes every YAML file of the base and
// the overlays (resources, patches, kustomizations) into its API type, and
// checks every key of the env files the ConfigMap generators read.
func TestManifestFilesDecodeStrictly(t *testing.T) {
	t.Parallel()
	vars := configVars(t)
	var yamls, envs int
	for _, root := range []string{"base", "overlays"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			switch filepath.Ext(path) {
			case ".yaml", ".yml":
				yamls++
				require.NotContains(t, "\n"+string(data), "\n---", "%s: one object per file", path)
				decodeStrict(t, path, data)
			case ".env":
				envs++
				for key := range envFileKeys(t, path, data) {
					assert.Contains(t, vars, key, "%s: %s is not a variable of sink.Config", path, key)
				}
			default:
				t.Errorf("%s: unexpected file in a kustomization directory", path)
			}
			return nil
		})
		require.NoError(t, err)
	}
	assert.GreaterOrEqual(t, yamls, 8, "files decoded")
	assert.GreaterOrEqual(t, envs, 1, "env files checked")
}

// envFileKeys reads a kustomize env file: KEY=VALUE lines, # comments.
func envFileKeys(t *testing.T, path string, data []byte) map[string]string {
	t.Helper()
	keys := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "%s: %q is not KEY=VALUE", path, line)
		require.NotContains(t, keys, k, "%s: %s set twice", path, k)
		keys[k] = v
	}
	require.NoError(t, sc.Err())
	return keys
}

// TestKustomizeBuild builds the base and the overlay and checks the kinds
// and the wiring between the objects.
func TestKustomizeBuild(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{baseDir, overlayDir} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			r := build(t, dir)
			assert.ElementsMatch(t, []string{
				"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceMonitor", "ScaledObject",
			}, r.kinds)
			checkWiring(t, r)
		})
	}
}

// checkWiring checks what the kinds alone do not: names and selectors that
// must agree, probes, security and resources.
func checkWiring(t *testing.T, r rendered) {
	t.Helper()
	d := r.deployment
	require.NotNil(t, d)
	podLabels := d.Spec.Template.Labels
	require.NotNil(t, d.Spec.Selector)
	assert.Subset(t, podLabels, d.Spec.Selector.MatchLabels, "Deployment selector matches its pods")
	assert.Nil(t, d.Spec.Replicas, "replicas belong to KEDA: a value here is reset by every apply")
	// <name>-<pod-template-hash, up to 10>-<5>: at most 32 bytes, so the
	// default SINK_MEMBER (the host name cut to 32 bytes) keeps the suffix.
	assert.LessOrEqual(t, len(d.Name), 15, "Deployment name keeps pod names within 32 bytes")

	spec := d.Spec.Template.Spec
	require.Len(t, spec.Containers, 1)
	c := spec.Containers[0]
	require.Len(t, c.Ports, 1)
	assert.Equal(t, "http", c.Ports[0].Name)
	assert.EqualValues(t, 9090, c.Ports[0].ContainerPort)
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startup", c.StartupProbe, "/healthz"},
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
	} {
		require.NotNil(t, p.probe, p.name)
		require.NotNil(t, p.probe.HTTPGet, p.name)
		assert.Equal(t, p.path, p.probe.HTTPGet.Path, p.name)
		assert.Equal(t, "http", p.probe.HTTPGet.Port.String(), p.name)
	}

	assert.Equal(t, "250m", c.Resources.Requests.Cpu().String())
	assert.Equal(t, "128Mi", c.Resources.Requests.Memory().String())
	assert.Equal(t, "512Mi", c.Resources.Limits.Memory().String())

	psc, sc := spec.SecurityContext, c.SecurityContext
	require.NotNil(t, psc)
	require.NotNil(t, sc)
	assert.True(t, *psc.RunAsNonRoot)
	assert.EqualValues(t, 65532, *psc.RunAsUser, "the distroless nonroot user, as in the Dockerfile")
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)
	assert.True(t, *sc.ReadOnlyRootFilesystem)
	assert.False(t, *sc.AllowPrivilegeEscalation)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)

	for _, ef := range c.EnvFrom {
		require.NotNil(t, ef.ConfigMapRef, "envFrom: ConfigMaps only (secrets by key)")
		assert.Contains(t, r.configMaps, ef.ConfigMapRef.Name, "envFrom names a ConfigMap of the build")
	}
	for _, e := range c.Env {
		assert.NotEqual(t, "SINK_MEMBER", e.Name,
			"SINK_MEMBER unset: the binary uses the pod name cut to 32 bytes; a longer name set here fails validation")
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			assert.Equal(t, e.Name, e.ValueFrom.SecretKeyRef.Key, "Secret keys are the variable names")
		}
	}

	require.NotNil(t, r.service)
	assert.Equal(t, podLabels, mergeLabels(podLabels, r.service.Spec.Selector), "Service selects the pods")
	require.Len(t, r.service.Spec.Ports, 1)
	assert.Equal(t, "http", r.service.Spec.Ports[0].Name)
	assert.EqualValues(t, 9090, r.service.Spec.Ports[0].Port)
	assert.Equal(t, "http", r.service.Spec.Ports[0].TargetPort.String())

	require.NotNil(t, r.serviceMonitor)
	assert.Subset(t, r.service.Labels, r.serviceMonitor.Spec.Selector.MatchLabels, "ServiceMonitor selects the Service")
	require.Len(t, r.serviceMonitor.Spec.Endpoints, 1)
	assert.Equal(t, "http", r.serviceMonitor.Spec.Endpoints[0].Port)
	assert.Equal(t, "/metrics", r.serviceMonitor.Spec.Endpoints[0].Path)

	require.NotNil(t, r.pdb)
	require.NotNil(t, r.pdb.Spec.MaxUnavailable)
	assert.Equal(t, "1", r.pdb.Spec.MaxUnavailable.String())
	assert.Subset(t, podLabels, r.pdb.Spec.Selector.MatchLabels, "PodDisruptionBudget selects the pods")

	so := r.scaledObject
	require.NotNil(t, so)
	assert.Equal(t, d.Name, so.Spec.ScaleTargetRef.Name, "ScaledObject scales the Deployment")
	require.NotNil(t, so.Spec.MinReplicaCount)
	require.NotNil(t, so.Spec.MaxReplicaCount)
	assert.EqualValues(t, 1, *so.Spec.MinReplicaCount)
	require.Len(t, so.Spec.Triggers, 1)
	tr := so.Spec.Triggers[0]
	assert.Equal(t, "kafka", tr.Type)
	for _, key := range []string{"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} {
		assert.NotEmpty(t, tr.Metadata[key], "kafka trigger %s", key)
	}
}

// mergeLabels returns base with over's labels laid on top.
func mergeLabels(base, over map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}
