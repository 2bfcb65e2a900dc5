package k8s_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDockerfile reads the Dockerfile (no Docker engine is needed) and
// checks it against go.mod and the Deployment: the Go version, a static
// trimmed build of cmd/sinkworker, the non-root user, the port and the
// entrypoint.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	df := string(data)

	gomod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(gomod))
	require.NotNil(t, goVersion, "go directive in go.mod")

	froms := regexp.MustCompile(`(?m)^FROM\s+(?:--platform=\S+\s+)?(\S+)`).FindAllStringSubmatch(df, -1)
	require.Len(t, froms, 2, "multi-stage: a build stage and the final image")
	assert.Equal(t, "golang:"+goVersion[1], froms[0][1], "the build image's Go is go.mod's")
	assert.Equal(t, "gcr.io/distroless/static-debian12:nonroot", froms[1][1])

	assert.Contains(t, df, "CGO_ENABLED=0")
	assert.Contains(t, df, "-trimpath")
	assert.Contains(t, df, `-ldflags "-s -w"`)
	cmd := regexp.MustCompile(`go build .* (\./cmd/\S+)`).FindStringSubmatch(df)
	require.NotNil(t, cmd, "go build of the command")
	assert.DirExists(t, filepath.Join("..", cmd[1]))
	assert.Contains(t, df, "COPY --from=build /out/sinkworker /sinkworker")
	assert.Regexp(t, `(?m)^ENTRYPOINT \["/sinkworker"\]$`, df)

	r := build(t, baseDir)
	user := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindStringSubmatch(df)
	require.NotNil(t, user, "USER uid:gid, numeric so runAsNonRoot can be verified")
	psc := r.deployment.Spec.Template.Spec.SecurityContext
	assert.Equal(t, strconv.Itoa(int(*psc.RunAsUser)), user[1], "USER = runAsUser")
	assert.Equal(t, strconv.Itoa(int(*psc.RunAsGroup)), user[2], "USER group = runAsGroup")

	expose := regexp.MustCompile(`(?m)^EXPOSE (\d+)$`).FindStringSubmatch(df)
	require.NotNil(t, expose)
	assert.Equal(t, expose[1], strconv.Itoa(int(r.deployment.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort)), "EXPOSE = containerPort")
	addr := containerEnv(t, r).values["HTTP_ADDR"]
	if addr == "" {
		addr = configVars(t)["HTTP_ADDR"]
	}
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	assert.Equal(t, expose[1], port, "EXPOSE = HTTP_ADDR's port")
}

// demoModules are the modules only `sinkworker demo` needs: its embedded
// broker and PostgreSQL.
var demoModules = regexp.MustCompile(`github\.com/(twmb/franz-go/pkg/kfake|fergusstrange/embedded-postgres|lib/pq)\b`)

// TestImageLeavesOutDemo builds cmd/sinkworker with the build tags of the
// Dockerfile's go build and checks that the binary links none of the
// demo's modules and that its `demo` says so with exit status 2; and that
// the default build (go run ./cmd/sinkworker demo) does link them, so the
// check would see them.
func TestImageLeavesOutDemo(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	tags := regexp.MustCompile(`go build .*-tags[= ](\S+)`).FindStringSubmatch(string(data))
	require.NotNil(t, tags, "the Dockerfile's go build sets -tags")
	require.Contains(t, strings.Split(tags[1], ","), "nodemo")

	deps := exec.Command("go", "list", "-deps", "./cmd/sinkworker")
	deps.Dir = ".."
	out, err := deps.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Regexp(t, demoModules, string(out), "the default build links the demo")

	bin := filepath.Join(t.TempDir(), "sinkworker")
	build := exec.Command("go", "build", "-tags", tags[1], "-o", bin, "./cmd/sinkworker")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err = build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command("go", "version", "-m", bin).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "github.com/jackc/pgx/v5", "go version -m lists the linked modules")
	assert.NotRegexp(t, demoModules, string(out), "the image's binary links a demo module")

	out, err = exec.Command(bin, "demo").CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	assert.Equal(t, 2, exit.ExitCode())
	assert.Contains(t, string(out), "demo not built into this binary")
}

// TestDockerignore checks that the build context keeps what the build needs
// and leaves out local state.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../.dockerignore")
	require.NoError(t, err)
	var patterns []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	// Docker's rules, as far as this file uses them: a pattern matches a path
	// from the context root (and so everything under it); **/ matches at any
	// depth.
	ignored := func(path string) bool {
		for _, p := range patterns {
			require.False(t, strings.HasPrefix(p, "!"), "exceptions are not handled here")
			anyDepth := strings.HasPrefix(p, "**/")
			p = strings.TrimPrefix(p, "**/")
			for dir := path; dir != "."; dir = filepath.Dir(dir) {
				if ok, _ := filepath.Match(p, dir); ok {
					return true
				}
				if ok, _ := filepath.Match(p, filepath.Base(dir)); ok && anyDepth {
					return true
				}
			}
		}
		return false
	}
	for _, keep := range []string{"go.mod", "go.sum", "cmd/sinkworker/main.go", "sink/config.go", "pool/pool.go", "batch/batch.go"} {
		assert.False(t, ignored(keep), ".dockerignore must not exclude %s", keep)
	}
	for _, drop := range []string{".git", ".services", "bin"} {
		assert.True(t, ignored(drop), ".dockerignore should exclude %s", drop)
	}
}
