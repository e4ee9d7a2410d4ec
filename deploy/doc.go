// Package deploy holds what runs tributary on Google Cloud: the container
// image (Dockerfile), the Kubernetes manifests (k8s/, kustomize), the cloud
// resources and their IAM grants (terraform/), the Postgres side
// (postgres/setup.sql) and a Grafana dashboard (grafana/).
//
// It has no Go code of its own. Its tests check those files against the
// binary they deploy: every manifest decodes strictly into Kubernetes API
// types after a kustomize build, container arguments name real subcommands
// and flags, the ConfigMap is a config the binary loads, the probes and
// scrape annotations match http.listen, the Terraform parses and is
// canonically formatted, and every metric the dashboard queries is one the
// binary exposes. It does not build the image or apply anything.
package deploy
