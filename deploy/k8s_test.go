package deploy_test

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/tributary-cdc/tributary/internal/config"
)

// kustomizations are the directories kustomize builds: the base and every
// overlay.
var kustomizations = []string{"deploy/k8s/base", "deploy/k8s/overlays/example"}

// apiVersions are the kinds the manifests may hold, with their API version.
var apiVersions = map[string]string{
	"Deployment":     "apps/v1",
	"ServiceAccount": "v1",
	"ConfigMap":      "v1",
	"Namespace":      "v1",
}

// decodeStrict decodes one manifest into its Kubernetes API type, refusing
// unknown and duplicate fields, and checks its apiVersion.
func decodeStrict(data []byte) (any, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := sigsyaml.Unmarshal(data, &meta); err != nil {
		return nil, err
	}
	want, ok := apiVersions[meta.Kind]
	if !ok {
		return nil, fmt.Errorf("kind %q is not one the tests know", meta.Kind)
	}
	if meta.APIVersion != want {
		return nil, fmt.Errorf("%s has apiVersion %q, want %q", meta.Kind, meta.APIVersion, want)
	}
	var obj any
	switch meta.Kind {
	case "Deployment":
		obj = &appsv1.Deployment{}
	case "ServiceAccount":
		obj = &corev1.ServiceAccount{}
	case "ConfigMap":
		obj = &corev1.ConfigMap{}
	case "Namespace":
		obj = &corev1.Namespace{}
	}
	if err := sigsyaml.UnmarshalStrict(data, obj); err != nil {
		return nil, fmt.Errorf("decoding %s strictly: %w", meta.Kind, err)
	}
	return obj, nil
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// documents splits a multi-document YAML file.
func documents(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// kustomization reads and strictly decodes dir's kustomization.yaml.
func kustomization(t *testing.T, dir string) *kusttypes.Kustomization {
	t.Helper()
	var k kusttypes.Kustomization
	if err := sigsyaml.UnmarshalStrict(readFile(t, path.Join(dir, "kustomization.yaml")), &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	return &k
}

// built is the output of a kustomize build, decoded.
type built struct {
	deployments     map[string]*appsv1.Deployment
	serviceAccounts map[string]*corev1.ServiceAccount
	configMaps      map[string]*corev1.ConfigMap
	namespaces      []string
}

// build runs kustomize on dir, as `kubectl apply -k` would, and decodes every
// resource strictly.
func build(t *testing.T, dir string) *built {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join(root, dir))
	if err != nil {
		t.Fatal(err)
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b := &built{deployments: map[string]*appsv1.Deployment{}, serviceAccounts: map[string]*corev1.ServiceAccount{}, configMaps: map[string]*corev1.ConfigMap{}}
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := decodeStrict(y)
		if err != nil {
			t.Errorf("kustomize build %s: %s %q: %v", dir, r.GetKind(), r.GetName(), err)
			continue
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			b.deployments[o.Name] = o
		case *corev1.ServiceAccount:
			b.serviceAccounts[o.Name] = o
		case *corev1.ConfigMap:
			b.configMaps[o.Name] = o
		case *corev1.Namespace:
			b.namespaces = append(b.namespaces, o.Name)
		}
	}
	if len(b.deployments) != 2 {
		t.Fatalf("kustomize build %s: %d Deployments, want capture and sink", dir, len(b.deployments))
	}
	return b
}

// TestManifestsDecodeStrictly decodes every manifest file as written, then
// the output of each kustomize build, into the Kubernetes API types.
func TestManifestsDecodeStrictly(t *testing.T) {
	for _, dir := range kustomizations {
		k := kustomization(t, dir)
		generated := map[string]bool{}
		for _, g := range k.ConfigMapGenerator {
			for _, f := range g.FileSources {
				generated[f] = true
			}
		}
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || name == "kustomization.yaml" || generated[name] {
				continue
			}
			for i, doc := range documents(readFile(t, path.Join(dir, name))) {
				if _, err := decodeStrict(doc); err != nil {
					t.Errorf("%s/%s, document %d: %v", dir, name, i+1, err)
				}
			}
		}
		build(t, dir)
	}
}

// TestKustomizationListsEveryFile checks that each kustomization names every
// file beside it (as a resource, a patch or a generator's input) and that
// everything it names exists.
func TestKustomizationListsEveryFile(t *testing.T) {
	for _, dir := range kustomizations {
		k := kustomization(t, dir)
		named := map[string]string{"kustomization.yaml": "itself"}
		for _, r := range k.Resources {
			fi, err := os.Stat(filepath.Join(root, dir, r))
			if err != nil {
				t.Errorf("%s: resource %s: %v", dir, r, err)
				continue
			}
			if fi.IsDir() {
				if _, err := os.Stat(filepath.Join(root, dir, r, "kustomization.yaml")); err != nil {
					t.Errorf("%s: resource %s is a directory without kustomization.yaml", dir, r)
				}
				continue
			}
			named[r] = "resources"
		}
		for _, p := range k.Patches {
			if p.Path != "" {
				named[p.Path] = "patches"
			}
		}
		for _, g := range k.ConfigMapGenerator {
			for _, f := range g.FileSources {
				named[f] = "configMapGenerator"
			}
		}
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		var files []string
		for _, e := range entries {
			if !e.IsDir() {
				files = append(files, e.Name())
			}
		}
		for _, f := range files {
			if named[f] == "" {
				t.Errorf("%s/%s is not named by the kustomization", dir, f)
			}
		}
		for f, where := range named {
			if !slices.Contains(files, f) {
				t.Errorf("%s/kustomization.yaml: %s names %s, which does not exist", dir, where, f)
			}
		}
	}
}

// component is one of the two Deployments and what the tests expect of it.
type component struct {
	deployment, container, subcommand, terraformSA, terraformKSA string
}

var components = []component{
	{"tributary-capture", "capture", "capture", "capture", "capture_ksa"},
	{"tributary-sink", "sink", "sink", "sink", "sink_ksa"},
}

// TestDeployments checks what the design needs of each Deployment, on every
// kustomize build.
func TestDeployments(t *testing.T) {
	tf := loadTerraform(t)
	for _, dir := range kustomizations {
		b := build(t, dir)
		capture := b.deployments["tributary-capture"]
		if capture == nil {
			t.Fatalf("%s: no Deployment tributary-capture", dir)
		}
		// One reader per slot.
		if capture.Spec.Replicas == nil || *capture.Spec.Replicas != 1 {
			t.Errorf("%s: capture must run exactly one replica", dir)
		}
		if capture.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("%s: capture's strategy is %q, want Recreate", dir, capture.Spec.Strategy.Type)
		}
		sink := b.deployments["tributary-sink"]
		if sink == nil {
			t.Fatalf("%s: no Deployment tributary-sink", dir)
		}
		if sink.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
			t.Errorf("%s: sink's strategy is %q, want RollingUpdate", dir, sink.Spec.Strategy.Type)
		}

		for _, c := range components {
			d := b.deployments[c.deployment]
			if d == nil {
				t.Errorf("%s: no Deployment %s", dir, c.deployment)
				continue
			}
			where := dir + ": " + c.deployment
			checkPod(t, where, d, c, b, tf)
		}
	}
}

func checkPod(t *testing.T, where string, d *appsv1.Deployment, c component, b *built, tf *terraform) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", where, len(pod.Containers))
	}
	ctr := pod.Containers[0]
	if ctr.Name != c.container {
		t.Errorf("%s: container %q, want %q", where, ctr.Name, c.container)
	}
	if len(ctr.Command) != 0 {
		t.Errorf("%s: command %q overrides the image's ENTRYPOINT", where, ctr.Command)
	}
	if len(ctr.Args) == 0 || ctr.Args[0] != c.subcommand {
		t.Errorf("%s: args %q, want the %s subcommand first", where, ctr.Args, c.subcommand)
	}

	// The config: --config names a key of the ConfigMap mounted at its directory.
	cfgPath := flagValue(ctr.Args, "--config")
	if cfgPath != "/etc/tributary/tributary.yaml" {
		t.Errorf("%s: --config %q, want /etc/tributary/tributary.yaml", where, cfgPath)
	}
	cm := mountedConfigMap(t, where, pod, ctr, path.Dir(cfgPath), b)
	var cfg *config.Config
	if cm != nil {
		data, ok := cm.Data[path.Base(cfgPath)]
		if !ok {
			t.Fatalf("%s: ConfigMap %s has no key %s", where, cm.Name, path.Base(cfgPath))
		}
		cfg = loadConfig(t, where, cm.Name, data, ctr)
	}

	// Secrets come from a Secret, never from the manifest.
	env := map[string]corev1.EnvVar{}
	for _, e := range ctr.Env {
		env[e.Name] = e
	}
	pg, ok := env["PGPASSWORD"]
	switch {
	case !ok:
		t.Errorf("%s: no PGPASSWORD in the environment", where)
	case pg.Value != "" || pg.ValueFrom == nil || pg.ValueFrom.SecretKeyRef == nil:
		t.Errorf("%s: PGPASSWORD must come from a Secret (secretKeyRef)", where)
	case pg.ValueFrom.SecretKeyRef.Name != "tributary-postgres" || pg.ValueFrom.SecretKeyRef.Key != "password":
		t.Errorf("%s: PGPASSWORD from %s/%s, want the Secret tributary-postgres, key password (as the README says)",
			where, pg.ValueFrom.SecretKeyRef.Name, pg.ValueFrom.SecretKeyRef.Key)
	}

	// GOMEMLIMIT about 90% of the memory limit.
	limit, ok := ctr.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		t.Errorf("%s: no memory limit", where)
	} else if gml, err := parseGoMemLimit(env["GOMEMLIMIT"].Value); err != nil {
		t.Errorf("%s: GOMEMLIMIT: %v", where, err)
	} else if r := float64(gml) / float64(limit.Value()); r < 0.85 || r > 0.95 {
		t.Errorf("%s: GOMEMLIMIT %s is %.0f%% of the memory limit %s, want about 90%%", where, env["GOMEMLIMIT"].Value, 100*r, limit.String())
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := ctr.Resources.Requests[res]; !ok {
			t.Errorf("%s: no %s request", where, res)
		}
	}
	if req, lim := ctr.Resources.Requests[corev1.ResourceMemory], ctr.Resources.Limits[corev1.ResourceMemory]; req.Cmp(lim) > 0 {
		t.Errorf("%s: memory request %s above the limit %s", where, req.String(), lim.String())
	}

	// Non-root, read-only root filesystem, a writable temp directory.
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: the pod must set runAsNonRoot and a non-zero runAsUser", where)
	}
	csc := ctr.SecurityContext
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("%s: the container must have a read-only root filesystem", where)
	}
	if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("%s: the container must set allowPrivilegeEscalation: false", where)
	}
	if tmp := env["TMPDIR"].Value; tmp == "" {
		t.Errorf("%s: TMPDIR unset: os.TempDir() (capture's spill directory) would be on the read-only root", where)
	} else if v := volumeAt(pod, ctr, tmp); v == nil || v.EmptyDir == nil {
		t.Errorf("%s: TMPDIR %s is not an emptyDir mount", where, tmp)
	}

	// Probes and scraping on http.listen.
	if cfg != nil {
		port := listenPort(t, where, cfg.HTTP.Listen)
		checkProbe(t, where+": readinessProbe", ctr.ReadinessProbe, ctr, port)
		checkProbe(t, where+": livenessProbe", ctr.LivenessProbe, ctr, port)
		ann := d.Spec.Template.Annotations
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" || ann["prometheus.io/port"] != strconv.Itoa(port) {
			t.Errorf("%s: prometheus.io annotations %v, want scrape \"true\", path /metrics, port %d (http.listen %q)",
				where, ann, port, cfg.HTTP.Listen)
		}
	}

	// Workload Identity: the KSA names the Google service account Terraform creates.
	sa := b.serviceAccounts[pod.ServiceAccountName]
	if sa == nil {
		t.Errorf("%s: serviceAccountName %q is not in the build", where, pod.ServiceAccountName)
		return
	}
	if want := tf.stringDefault(t, c.terraformKSA); pod.ServiceAccountName != want {
		t.Errorf("%s: serviceAccountName %q, but terraform's %s defaults to %q", where, pod.ServiceAccountName, c.terraformKSA, want)
	}
	if cfg != nil {
		accountID := tf.resourceString(t, "google_service_account", c.terraformSA, "account_id")
		want := accountID + "@" + cfg.Project + ".iam.gserviceaccount.com"
		if got := sa.Annotations["iam.gke.io/gcp-service-account"]; got != want {
			t.Errorf("%s: ServiceAccount %s is annotated iam.gke.io/gcp-service-account=%q, want %q", where, sa.Name, got, want)
		}
	}
	if ns := d.Namespace; ns != "" {
		if want := tf.stringDefault(t, "k8s_namespace"); ns != want {
			t.Errorf("%s: namespace %q, but terraform's k8s_namespace defaults to %q", where, ns, want)
		}
	}
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// mountedConfigMap finds the ConfigMap volume mounted at dir.
func mountedConfigMap(t *testing.T, where string, pod corev1.PodSpec, ctr corev1.Container, dir string, b *built) *corev1.ConfigMap {
	t.Helper()
	v := volumeAt(pod, ctr, dir)
	if v == nil || v.ConfigMap == nil {
		t.Errorf("%s: no ConfigMap mounted at %s", where, dir)
		return nil
	}
	cm := b.configMaps[v.ConfigMap.Name]
	if cm == nil {
		t.Errorf("%s: ConfigMap %s is not in the build", where, v.ConfigMap.Name)
	}
	return cm
}

// volumeAt is the volume mounted exactly at dir.
func volumeAt(pod corev1.PodSpec, ctr corev1.Container, dir string) *corev1.Volume {
	for _, m := range ctr.VolumeMounts {
		if path.Clean(m.MountPath) != path.Clean(dir) {
			continue
		}
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == m.Name {
				return &pod.Volumes[i]
			}
		}
	}
	return nil
}

// loadConfig loads the ConfigMap's config with the project's loader. Every
// ${VAR} it reads must be set in the container's environment.
func loadConfig(t *testing.T, where, name, data string, ctr corev1.Container) *config.Config {
	t.Helper()
	var asked []string
	lookup := func(k string) (string, bool) {
		asked = append(asked, k)
		if k == "PGPASSWORD" {
			return "s3cret", true
		}
		return "", false
	}
	cfg, err := config.LoadBytes(name, []byte(data), lookup, nil)
	if err != nil {
		t.Errorf("%s: the ConfigMap's config does not load: %v", where, err)
		return nil
	}
	if !slices.Contains(asked, "PGPASSWORD") {
		t.Errorf("%s: the config never reads ${PGPASSWORD}: where does the password come from?", where)
	}
	for _, k := range asked {
		if !slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool { return e.Name == k }) {
			t.Errorf("%s: the config reads ${%s}, which the container's environment does not set", where, k)
		}
	}
	if !strings.Contains(cfg.Postgres.URL.Reveal(), "s3cret") {
		t.Errorf("%s: ${PGPASSWORD} does not reach postgres.url", where)
	}
	return cfg
}

func listenPort(t *testing.T, where, listen string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("%s: http.listen %q: %v", where, listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port == 0 {
		t.Fatalf("%s: http.listen %q needs a fixed port for the probes", where, listen)
	}
	return port
}

func checkProbe(t *testing.T, where string, p *corev1.Probe, ctr corev1.Container, port int) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: missing, or not an httpGet", where)
		return
	}
	if p.HTTPGet.Path != "/healthz" {
		t.Errorf("%s: path %q, want /healthz", where, p.HTTPGet.Path)
	}
	got := p.HTTPGet.Port.IntValue()
	if name := p.HTTPGet.Port.StrVal; name != "" {
		got = 0
		for _, cp := range ctr.Ports {
			if cp.Name == name {
				got = int(cp.ContainerPort)
			}
		}
	}
	if got != port {
		t.Errorf("%s: port %s is %d, but http.listen serves %d", where, p.HTTPGet.Port.String(), got, port)
	}
	// /healthz connects to Postgres with a 5s deadline.
	if p.TimeoutSeconds < 6 {
		t.Errorf("%s: timeoutSeconds %d is shorter than /healthz may take (5s)", where, p.TimeoutSeconds)
	}
}

// parseGoMemLimit reads GOMEMLIMIT's syntax: a number of bytes with an
// optional B, KiB, MiB, GiB or TiB.
func parseGoMemLimit(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%q is not a GOMEMLIMIT value", s)
			}
			return v * u.mult, nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a GOMEMLIMIT value", s)
	}
	return v, nil
}

func TestParseGoMemLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{{"921MiB", 921 << 20}, {"2GiB", 2 << 30}, {"1000", 1000}, {"5B", 5}} {
		got, err := parseGoMemLimit(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseGoMemLimit(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "1Gi", "MiB", "1.5GiB"} {
		if _, err := parseGoMemLimit(bad); err == nil {
			t.Errorf("parseGoMemLimit(%q) accepted", bad)
		}
	}
	// And the unit agrees with Kubernetes' for the values used.
	q := resource.MustParse("1Gi")
	if v, _ := parseGoMemLimit("1GiB"); v != q.Value() {
		t.Errorf("1GiB = %d, Kubernetes' 1Gi = %d", v, q.Value())
	}
}

// flagPattern finds a flag in cobra's help output.
func flagPattern(name string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^\s+(-\w, )?` + regexp.QuoteMeta(name) + `(\s|$)`)
}

// TestContainerArgsAreRealFlags runs the binary's help for each subcommand the
// Deployments run and checks that every flag they pass exists.
func TestContainerArgsAreRealFlags(t *testing.T) {
	flags := map[string]map[string]bool{} // subcommand → flags used
	for _, dir := range kustomizations {
		for _, d := range build(t, dir).deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				if len(c.Args) == 0 {
					continue
				}
				sub := c.Args[0]
				if flags[sub] == nil {
					flags[sub] = map[string]bool{}
				}
				for _, a := range c.Args[1:] {
					if strings.HasPrefix(a, "-") {
						name, _, _ := strings.Cut(a, "=")
						flags[sub][name] = true
					}
				}
			}
		}
	}
	if len(flags) == 0 {
		t.Fatal("no container args found")
	}
	subs := make([]string, 0, len(flags))
	for s := range flags {
		subs = append(subs, s)
	}
	sort.Strings(subs)
	for _, sub := range subs {
		help := run(t, sub, "--help")
		if help.code != 0 || !strings.Contains(help.out, "tributary "+sub) {
			t.Errorf("tributary %s --help exited %d: is %q a subcommand?\n%s", sub, help.code, sub, help.out)
			continue
		}
		// A subcommand whose work has not landed yet exits 2 saying so and
		// has no flags to check; once it lands, its flags are checked.
		if r := run(t, sub); r.code == 2 && strings.Contains(r.out, "not built yet") {
			t.Logf("tributary %s is not built yet (%q): its flags %v are checked once it is", sub, strings.TrimSpace(r.out), keys(flags[sub]))
			continue
		}
		for _, f := range keys(flags[sub]) {
			if !flagPattern(f).MatchString(help.out) {
				t.Errorf("the manifests pass %s to tributary %s, which has no such flag:\n%s", f, sub, help.out)
			}
		}
	}
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
