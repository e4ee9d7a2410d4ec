package localstack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throwaway cluster made with initdb and run with pg_ctl.
type Postgres struct {
	// Dir is the data directory.
	Dir string
	// Port is the loopback TCP port the server listens on.
	Port int
	// User is the superuser the cluster was initialised with.
	User string

	bin  string
	cred *syscall.Credential
	log  string
}

// DSN returns a connection string for database db (postgres when empty) as the
// cluster's superuser. The cluster trusts loopback connections: there is no
// password to leak.
func (p *Postgres) DSN(db string) string {
	if db == "" {
		db = "postgres"
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", p.User, p.Port, db)
}

// Tool returns the path of a program of the cluster's Postgres installation
// (pg_recvlogical, pgbench, psql…).
func (p *Postgres) Tool(name string) string { return filepath.Join(p.bin, name) }

// postgresBinDir finds the directory holding initdb and pg_ctl: PATH first,
// then pg_config --bindir, then Debian's versioned directories, newest first.
func postgresBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		// Follow links: the installation's own directory holds the other tools.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("finding initdb: not on PATH, not in pg_config --bindir, not under /usr/lib/postgresql (install Debian's postgresql package)")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// serverCredential returns the credential to run the server under. initdb and
// postgres refuse to run as root, so as root the cluster runs as the
// unprivileged "postgres" user Debian's package creates; otherwise as the
// current user.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("looking up the postgres OS user to run the server as (root may not run it): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// startPostgres creates a cluster under dir (unless one is there already) and
// starts it on a free loopback port.
func startPostgres(ctx context.Context, dir, logDir string) (*Postgres, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	p := &Postgres{Dir: dir, User: "postgres", bin: bin, cred: cred, log: filepath.Join(logDir, "postgres.log")}
	if err := p.prepareDir(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "PG_VERSION")); err != nil {
		if err := p.run(ctx, "initdb", "-D", p.Dir, "-U", p.User, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"); err != nil {
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		if p.Port, err = freePort(); err != nil {
			return nil, err
		}
		err = p.run(ctx, "pg_ctl", "start", "-D", p.Dir, "-w", "-t", "60", "-l", p.log, "-o", p.serverOptions())
		if err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, "postgres to accept connections", 30*time.Second, p.ping); err != nil {
		return nil, err
	}
	return p, nil
}

// serverOptions are the settings the stack needs, passed on the command line
// so that a reused data directory gets the current port.
func (p *Postgres) serverOptions() string {
	opts := []string{
		"-c listen_addresses=127.0.0.1",
		"-c port=" + strconv.Itoa(p.Port),
		"-c unix_socket_directories=''",
		"-c wal_level=logical",
		"-c max_wal_senders=20",
		"-c max_replication_slots=20",
		"-c fsync=off",
		"-c full_page_writes=off",
		"-c log_min_messages=warning",
	}
	return strings.Join(opts, " ")
}

// prepareDir makes dir exist, owned by the server's user. When that user
// cannot reach dir (a parent it may not traverse), the cluster lives in a
// directory under the system temp dir and dir becomes a symlink to it.
func (p *Postgres) prepareDir() error {
	if p.cred == nil {
		return os.MkdirAll(p.Dir, 0o700)
	}
	parent := filepath.Dir(p.Dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", parent, err)
	}
	if target, err := os.Readlink(p.Dir); err == nil {
		p.Dir = target
		p.log = filepath.Join(filepath.Dir(target), "postgres.log")
	} else if !p.canReach(parent) {
		tmp, err := os.MkdirTemp("", "tributary-pg-")
		if err != nil {
			return fmt.Errorf("creating a postgres data directory: %w", err)
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			return err
		}
		if err := os.Symlink(filepath.Join(tmp, "data"), p.Dir); err != nil {
			return fmt.Errorf("linking %s: %w", p.Dir, err)
		}
		// The server writes its log itself: it goes beside the data, linked from the stack's logs.
		_ = os.Remove(p.log)
		if err := os.Symlink(filepath.Join(tmp, "postgres.log"), p.log); err != nil {
			return fmt.Errorf("linking %s: %w", p.log, err)
		}
		p.Dir, p.log = filepath.Join(tmp, "data"), filepath.Join(tmp, "postgres.log")
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", p.Dir, err)
	}
	if err := os.Chown(p.Dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
		return fmt.Errorf("giving %s to the postgres user: %w", p.Dir, err)
	}
	// The server's log file sits beside the stack's other logs; create it for the server's user.
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("creating %s: %w", p.log, err)
	}
	f.Close()
	return os.Chown(p.log, int(p.cred.Uid), int(p.cred.Gid))
}

// canReach reports whether the server's user may traverse into dir.
func (p *Postgres) canReach(dir string) bool {
	cmd := exec.Command("test", "-x", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	return cmd.Run() == nil
}

func (p *Postgres) run(ctx context.Context, tool string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, tool), args...)
	// Own process group: a Ctrl-C at the terminal reaches tributary, which
	// then stops the cluster in order, rather than the server directly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: true}
	cmd.Dir = os.TempDir()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running %s: %w\n%s", tool, err, lastLines(out.String(), 20))
	}
	return nil
}

func (p *Postgres) ping(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.DSN(""))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// Stop shuts the cluster down (fast mode: connections closed, data flushed).
func (p *Postgres) Stop(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(p.Dir, "postmaster.pid")); err != nil {
		return nil
	}
	return p.run(ctx, "pg_ctl", "stop", "-D", p.Dir, "-m", "fast", "-w", "-t", "60")
}

// Restart restarts the cluster in fast mode on the same port.
func (p *Postgres) Restart(ctx context.Context) error {
	return p.run(ctx, "pg_ctl", "restart", "-D", p.Dir, "-m", "fast", "-w", "-t", "60", "-l", p.log, "-o", p.serverOptions())
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
