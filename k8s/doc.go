// Package k8s holds sinkworker's deployment files, not code: a kustomize base
// (base/), an example overlay (overlays/example/), a Grafana dashboard
// (grafana/) and, at the module root, the Dockerfile. Its tests keep them
// honest: every manifest decodes strictly into the Kubernetes API types, the
// kustomize builds succeed, every variable the manifests set is a setting of
// sink.Config, and the dashboard references only the binary's metrics.
// README.md explains deployment and the connection budget.
package k8s
