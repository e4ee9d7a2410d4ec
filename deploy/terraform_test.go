package deploy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/tributary-cdc/tributary/internal/config"
)

const terraformDir = "deploy/terraform"

// terraform is the parsed module: its files and the blocks they declare.
type terraform struct {
	files     map[string][]byte
	bodies    map[string]*hclsyntax.Body
	variables map[string]*hclsyntax.Block
	outputs   map[string]*hclsyntax.Block
	locals    map[string]*hclsyntax.Attribute
	resources map[string]*hclsyntax.Block // "type.name"
	data      map[string]*hclsyntax.Block // "type.name"
}

func loadTerraform(t *testing.T) *terraform {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, terraformDir, "*.tf"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no .tf files in %s: %v", terraformDir, err)
	}
	tf := &terraform{files: map[string][]byte{}, bodies: map[string]*hclsyntax.Body{},
		variables: map[string]*hclsyntax.Block{}, outputs: map[string]*hclsyntax.Block{}, locals: map[string]*hclsyntax.Attribute{},
		resources: map[string]*hclsyntax.Block{}, data: map[string]*hclsyntax.Block{}}
	p := hclparse.NewParser()
	for _, path := range paths {
		name := filepath.Base(path)
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, diags := p.ParseHCL(src, name)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", name, diags)
		}
		tf.files[name] = src
		body := f.Body.(*hclsyntax.Body)
		tf.bodies[name] = body
		for _, b := range body.Blocks {
			switch b.Type {
			case "variable":
				tf.variables[b.Labels[0]] = b
			case "output":
				tf.outputs[b.Labels[0]] = b
			case "locals":
				for n, a := range b.Body.Attributes {
					tf.locals[n] = a
				}
			case "resource":
				tf.resources[b.Labels[0]+"."+b.Labels[1]] = b
			case "data":
				tf.data[b.Labels[0]+"."+b.Labels[1]] = b
			}
		}
	}
	return tf
}

// literal evaluates an attribute that must be a constant.
func literal(t *testing.T, where string, a *hclsyntax.Attribute) cty.Value {
	t.Helper()
	if a == nil {
		t.Fatalf("%s: missing", where)
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("%s: not a constant: %v", where, diags)
	}
	return v
}

// stringDefault is a variable's default, which must be a string.
func (tf *terraform) stringDefault(t *testing.T, name string) string {
	t.Helper()
	v, ok := tf.variables[name]
	if !ok {
		t.Fatalf("terraform: no variable %q", name)
	}
	d := literal(t, "variable "+name+" default", v.Body.Attributes["default"])
	if d.Type() != cty.String {
		t.Fatalf("terraform: variable %s's default is %s, not a string", name, d.Type().FriendlyName())
	}
	return d.AsString()
}

// resourceString is a constant string attribute of a resource.
func (tf *terraform) resourceString(t *testing.T, typ, name, attr string) string {
	t.Helper()
	r, ok := tf.resources[typ+"."+name]
	if !ok {
		t.Fatalf("terraform: no resource %s.%s", typ, name)
	}
	v := literal(t, typ+"."+name+"."+attr, r.Body.Attributes[attr])
	return v.AsString()
}

// TestTerraformParsesAndIsFormatted parses every .tf file and checks that it
// is in canonical form, as `terraform fmt` would leave it.
func TestTerraformParsesAndIsFormatted(t *testing.T) {
	tf := loadTerraform(t)
	for name, src := range tf.files {
		if got := hclwrite.Format(src); !bytes.Equal(got, src) {
			t.Errorf("%s is not canonically formatted; formatted, it reads:\n%s", name, got)
		}
	}
}

// TestTerraformDeclaresWhatItUses checks every reference: var.X, local.X,
// data.T.N and T.N must each be declared.
func TestTerraformDeclaresWhatItUses(t *testing.T) {
	tf := loadTerraform(t)
	for _, body := range tf.bodies {
		// Names a dynamic block or a for expression puts in scope.
		scoped := map[string]bool{}
		_ = hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			switch n := n.(type) {
			case *hclsyntax.Block:
				if n.Type == "dynamic" && len(n.Labels) == 1 {
					scoped[n.Labels[0]] = true
				}
			case *hclsyntax.ForExpr:
				scoped[n.KeyVar], scoped[n.ValVar] = true, true
			}
			return nil
		})
		check := func(n hclsyntax.Node) hcl.Diagnostics {
			e, ok := n.(*hclsyntax.ScopeTraversalExpr)
			if !ok {
				return nil
			}
			tr := e.Traversal
			rootName := tr.RootName()
			at := tr.SourceRange().String()
			attr := func(i int) string {
				if i < len(tr) {
					if a, ok := tr[i].(hcl.TraverseAttr); ok {
						return a.Name
					}
				}
				return ""
			}
			switch rootName {
			case "var":
				if tf.variables[attr(1)] == nil {
					t.Errorf("%s: var.%s is not declared", at, attr(1))
				}
			case "local":
				if tf.locals[attr(1)] == nil {
					t.Errorf("%s: local.%s is not declared", at, attr(1))
				}
			case "data":
				if tf.data[attr(1)+"."+attr(2)] == nil {
					t.Errorf("%s: data.%s.%s is not declared", at, attr(1), attr(2))
				}
			case "count", "each", "self", "path", "terraform":
			default:
				if scoped[rootName] {
					return nil
				}
				if tf.resources[rootName+"."+attr(1)] == nil {
					t.Errorf("%s: %s.%s is not declared", at, rootName, attr(1))
				}
			}
			return nil
		}
		for _, b := range body.Blocks {
			if b.Type != "variable" {
				_ = hclsyntax.VisitAll(b, check)
				continue
			}
			// A variable's type is a type expression (string, number), not a reference.
			for n, a := range b.Body.Attributes {
				if n != "type" {
					_ = hclsyntax.VisitAll(a, check)
				}
			}
			for _, nested := range b.Body.Blocks {
				_ = hclsyntax.VisitAll(nested, check)
			}
		}
	}
}

// TestTerraformHasWhatTheDeploymentNeeds checks the variables, outputs,
// provider pin and resource settings the design relies on, and that the
// names default to the config's defaults.
func TestTerraformHasWhatTheDeploymentNeeds(t *testing.T) {
	tf := loadTerraform(t)
	for _, v := range []string{"project_id", "region", "bucket_name", "bucket_location", "gcs_prefix", "retention_days",
		"topic_name", "subscription_name", "dead_letter_topic_name", "ack_deadline_seconds", "max_delivery_attempts",
		"dataset_id", "dataset_location", "k8s_namespace", "capture_ksa", "sink_ksa"} {
		b, ok := tf.variables[v]
		if !ok {
			t.Errorf("variables.tf: no variable %q", v)
			continue
		}
		for _, a := range []string{"description", "type"} {
			if b.Body.Attributes[a] == nil {
				t.Errorf("variable %q has no %s", v, a)
			}
		}
	}
	for _, o := range []string{"capture_service_account", "sink_service_account", "topic", "subscription",
		"dead_letter_topic", "bucket", "dataset"} {
		b, ok := tf.outputs[o]
		if !ok {
			t.Errorf("outputs.tf: no output %q", o)
		} else if b.Body.Attributes["description"] == nil {
			t.Errorf("output %q has no description", o)
		}
	}

	// The names default to the config's, so that a default config and a
	// default stack agree.
	def := config.Default()
	for v, want := range map[string]string{
		"topic_name":             def.PubSub.Topic,
		"subscription_name":      def.PubSub.Subscription,
		"dead_letter_topic_name": def.PubSub.DeadLetterTopic,
		"gcs_prefix":             def.GCS.Prefix,
		"dataset_location":       def.BigQuery.Location,
	} {
		if got := tf.stringDefault(t, v); got != want {
			t.Errorf("variable %s defaults to %q, the config's default is %q", v, got, want)
		}
	}

	// Providers pinned.
	var pinned bool
	for _, body := range tf.bodies {
		for _, b := range body.Blocks {
			if b.Type != "terraform" {
				continue
			}
			if b.Body.Attributes["required_version"] == nil {
				t.Error("the terraform block has no required_version")
			}
			for _, rp := range b.Body.Blocks {
				if rp.Type != "required_providers" {
					continue
				}
				g := literal(t, "required_providers.google", rp.Body.Attributes["google"])
				if g.GetAttr("source").AsString() != "hashicorp/google" || g.GetAttr("version").AsString() == "" {
					t.Errorf("required_providers.google = %#v, want source hashicorp/google and a version", g)
				}
				pinned = true
			}
		}
	}
	if !pinned {
		t.Error("no required_providers block pins the google provider")
	}

	// The subscription: ordered, dead-lettered, retried with backoff.
	sub := tf.resources["google_pubsub_subscription.sink"]
	if sub == nil {
		t.Fatal("no google_pubsub_subscription.sink")
	}
	if v := literal(t, "enable_message_ordering", sub.Body.Attributes["enable_message_ordering"]); !v.True() {
		t.Error("the sink's subscription must enable message ordering")
	}
	if sub.Body.Attributes["ack_deadline_seconds"] == nil {
		t.Error("the sink's subscription sets no ack_deadline_seconds")
	}
	for _, blk := range []string{"dead_letter_policy", "retry_policy", "expiration_policy"} {
		if !hasBlock(sub.Body, blk) {
			t.Errorf("the sink's subscription has no %s", blk)
		}
	}

	// The bucket: the system of record.
	bucket := tf.resources["google_storage_bucket.tributary"]
	if bucket == nil {
		t.Fatal("no google_storage_bucket.tributary")
	}
	if v := literal(t, "uniform_bucket_level_access", bucket.Body.Attributes["uniform_bucket_level_access"]); !v.True() {
		t.Error("the bucket must use uniform bucket-level access")
	}
	if v := literal(t, "public_access_prevention", bucket.Body.Attributes["public_access_prevention"]); v.AsString() != "enforced" {
		t.Error("the bucket must enforce public access prevention")
	}
	if !hasBlock(bucket.Body, "versioning") || !hasDynamic(bucket.Body, "retention_policy") {
		t.Error("the bucket needs versioning and a retention_policy driven by retention_days")
	}
	for _, r := range []string{"google_pubsub_topic.changes", "google_pubsub_topic.dead_letter", "google_bigquery_dataset.tributary",
		"google_service_account.capture", "google_service_account.sink",
		"google_service_account_iam_member.capture_workload_identity", "google_service_account_iam_member.sink_workload_identity"} {
		if tf.resources[r] == nil {
			t.Errorf("no resource %s", r)
		}
	}
}

// TestTerraformGrantsLeastPrivilege refuses basic and admin roles and wants
// a comment above every grant saying why it is there.
func TestTerraformGrantsLeastPrivilege(t *testing.T) {
	tf := loadTerraform(t)
	var grants []string
	for key, r := range tf.resources {
		if !strings.HasSuffix(r.Labels[0], "_iam_member") {
			continue
		}
		grants = append(grants, key)
		if a := r.Body.Attributes["role"]; a != nil {
			if v, diags := a.Expr.Value(nil); !diags.HasErrors() {
				role := v.AsString()
				if slices.Contains([]string{"roles/owner", "roles/editor", "roles/viewer"}, role) || strings.Contains(strings.ToLower(role), "admin") {
					t.Errorf("%s grants %s: too broad", key, role)
				}
			}
		}
		// The line above the block (or above its comment's blank-free run) is a comment.
		src := tf.files[r.TypeRange.Filename]
		lines := strings.Split(string(src), "\n")
		i := r.TypeRange.Start.Line - 2
		if i < 0 || !strings.HasPrefix(strings.TrimSpace(lines[i]), "#") {
			t.Errorf("%s (%s) has no comment above it saying why it is granted", key, r.TypeRange)
		}
	}
	sort.Strings(grants)
	if len(grants) < 10 {
		t.Errorf("only %d grants: %v", len(grants), grants)
	}
}

func hasBlock(body *hclsyntax.Body, typ string) bool {
	return slices.ContainsFunc(body.Blocks, func(b *hclsyntax.Block) bool { return b.Type == typ })
}

func hasDynamic(body *hclsyntax.Body, label string) bool {
	return slices.ContainsFunc(body.Blocks, func(b *hclsyntax.Block) bool {
		return b.Type == "dynamic" && len(b.Labels) == 1 && b.Labels[0] == label
	})
}
