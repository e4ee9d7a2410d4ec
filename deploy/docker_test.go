package deploy_test

import (
	"debug/elf"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
}

// stage is one FROM and what follows it.
type stage struct {
	name  string
	instr []instruction
}

func parseDockerfile(t *testing.T, src string) []stage {
	t.Helper()
	var stages []stage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			s := stage{}
			f := strings.Fields(in.args)
			if len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
				s.name = f[len(f)-1]
			}
			stages = append(stages, s)
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
		}
	}
	for _, l := range strings.Split(src, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(l, " \t"), "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(l)
		flush()
	}
	flush()
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a builder and a final stage", len(stages))
	}
	return stages
}

// TestDockerfile reads the Dockerfile: a static build in a builder stage,
// copied into a final stage that runs it as a numeric non-root user.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, string(readFile(t, "deploy/Dockerfile")))
	final := stages[len(stages)-1]

	var entry, user []string
	var copied string
	for _, in := range final.instr {
		switch in.cmd {
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.args), &entry); err != nil {
				t.Errorf("ENTRYPOINT %s is not the exec form: %v", in.args, err)
			}
		case "USER":
			user = strings.Split(in.args, ":")
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) == 3 && strings.HasPrefix(f[0], "--from=") && f[2] == "/tributary" {
				copied = f[1]
				if from := strings.TrimPrefix(f[0], "--from="); from != stages[0].name {
					t.Errorf("the binary is copied from stage %q, want the builder %q", from, stages[0].name)
				}
			}
		case "CMD":
			t.Errorf("the final stage has CMD %s: the Deployments give the subcommand", in.args)
		}
	}
	if !slices.Equal(entry, []string{"/tributary"}) {
		t.Errorf("ENTRYPOINT is %q, want [\"/tributary\"]", entry)
	}
	if len(user) == 0 {
		t.Error("the final stage has no USER")
	}
	for _, id := range user {
		if n, err := strconv.Atoi(id); err != nil || n == 0 {
			t.Errorf("USER %s: want a numeric, non-zero uid (and gid), so that runAsNonRoot can check it", strings.Join(user, ":"))
		}
	}
	if copied == "" {
		t.Fatal("the final stage copies no binary to /tributary from the builder")
	}

	// The builder: CGO_ENABLED=0 and the same flags the tests build with.
	var build string
	for _, in := range stages[0].instr {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
	}
	if build == "" {
		t.Fatal("the builder stage runs no go build")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-buildvcs=false", `-ldflags "-s -w"`, "-o " + copied, "./cmd/tributary"} {
		if !strings.Contains(build, want) {
			t.Errorf("the builder's go build lacks %s: %s", want, build)
		}
	}
	if !strings.Contains(strings.Join(buildFlags, " "), "-trimpath -buildvcs=false -ldflags -s -w") {
		t.Errorf("the test builds with %q, not the Dockerfile's flags", buildFlags)
	}
}

// TestImageBinaryIsStaticAndRuns checks the binary the image holds, built
// the same way: no dynamic loader, and the entrypoint's --help runs.
func TestImageBinaryIsStaticAndRuns(t *testing.T) {
	bin := binary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader: it would not start on distroless/static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary keeps its symbol table: -ldflags \"-s -w\" was not applied")
	}
	r := run(t, "--help")
	if r.code != 0 || !strings.Contains(r.out, "Usage:") || !strings.Contains(r.out, "capture") {
		t.Errorf("tributary --help exited %d:\n%s", r.code, r.out)
	}
}

// TestDockerignoreKeepsEveryPackage checks that the build context keeps every
// directory holding a package the binary is built from.
func TestDockerignoreKeepsEveryPackage(t *testing.T) {
	src := string(readFile(t, "deploy/Dockerfile.dockerignore"))
	var patterns []string
	for _, l := range strings.Split(src, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	if len(patterns) == 0 || patterns[0] != "*" {
		t.Fatalf("the dockerignore should start by leaving everything out (*), then let back in what the build needs; it starts %q", patterns)
	}
	kept := func(p string) bool {
		return slices.Contains(patterns, "!"+p) || slices.Contains(patterns, "!"+p+"/")
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !kept(f) {
			t.Errorf("the dockerignore leaves out %s", f)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/tributary")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	tops := map[string]bool{}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(abs, dir)
		if err != nil || rel == "." {
			t.Fatalf("package directory %s outside the module: %v", dir, err)
		}
		tops[strings.Split(filepath.ToSlash(rel), "/")[0]] = true
	}
	for top := range tops {
		if !kept(top) {
			t.Errorf("the binary is built from packages under %s/, which the dockerignore leaves out", top)
		}
	}
}

var (
	createRole        = regexp.MustCompile(`(?i)CREATE ROLE (\w+) WITH LOGIN REPLICATION`)
	createPublication = regexp.MustCompile(`(?is)CREATE PUBLICATION (\w+)\s+FOR TABLE ([^;]*?)\s+WITH \(publish_via_partition_root = true\);`)
	grantSelect       = regexp.MustCompile(`(?i)GRANT SELECT ON ([^;]*) TO (\w+);`)
)

// TestPostgresSetupMatchesConfig checks setup.sql against the base config: the
// role it logs in as, the publication and its tables.
func TestPostgresSetupMatchesConfig(t *testing.T) {
	sql := string(readFile(t, "deploy/postgres/setup.sql"))
	var code strings.Builder
	for _, l := range strings.Split(sql, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			code.WriteString(l + "\n")
		}
	}
	stmts := code.String()

	b := build(t, kustomizations[0])
	var cmName string
	for n := range b.configMaps {
		cmName = n
	}
	if len(b.configMaps) != 1 {
		t.Fatalf("the base builds %d ConfigMaps, want 1", len(b.configMaps))
	}
	cfg := loadConfig(t, "base", cmName, b.configMaps[cmName].Data["tributary.yaml"], b.deployments["tributary-capture"].Spec.Template.Spec.Containers[0])
	if cfg == nil {
		t.FailNow()
	}
	var tables []string
	for _, tb := range cfg.Postgres.Tables {
		tables = append(tables, tb.Schema+"."+tb.Name)
	}
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			out = append(out, strings.TrimSpace(p))
		}
		return out
	}

	m := createRole.FindStringSubmatch(stmts)
	if m == nil {
		t.Fatal("setup.sql creates no role WITH LOGIN REPLICATION")
	}
	role := m[1]
	if !strings.Contains(cfg.Postgres.URL.Reveal(), "://"+role+":") {
		t.Errorf("setup.sql creates role %s, the config logs in otherwise: %s", role, cfg.Postgres.URL)
	}
	m = createPublication.FindStringSubmatch(stmts)
	if m == nil {
		t.Fatal("setup.sql creates no publication FOR TABLE … WITH (publish_via_partition_root = true)")
	}
	if m[1] != cfg.Postgres.Publication {
		t.Errorf("setup.sql creates publication %s, the config reads %s", m[1], cfg.Postgres.Publication)
	}
	if got := split(m[2]); !slices.Equal(got, tables) {
		t.Errorf("the publication holds %v, the config captures %v", got, tables)
	}
	grants := grantSelect.FindAllStringSubmatch(stmts, -1)
	if len(grants) != 1 {
		t.Fatalf("setup.sql has %d GRANT SELECT statements, want 1 (the published tables)", len(grants))
	}
	if got := split(grants[0][1]); !slices.Equal(got, tables) || grants[0][2] != role {
		t.Errorf("setup.sql grants SELECT on %v to %s, want %v to %s", got, grants[0][2], tables, role)
	}
	if regexp.MustCompile(`(?i)ALL TABLES|SUPERUSER`).MatchString(stmts) {
		t.Error("setup.sql grants more than the published tables")
	}
}
