package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL cluster.
type Server struct {
	Port int
	dir  string
	bin  string
	cmd  *exec.Cmd
}

// need skips (or, in CI, fails) a test when a tool is missing.
func need(tb testing.TB, what string, err error) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s: %v; .ci/run must install it", what, err)
	}
	tb.Skipf("%s: %v", what, err)
}

// binDir finds the newest installed PostgreSQL's binaries.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no initdb under /usr/lib/postgresql/*/bin or on PATH (Debian package postgresql)")
}

// FreePort returns a loopback port nobody listens on now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// asUnprivileged runs name as the postgres user when we are root: initdb
// and postgres refuse to run as root.
func asUnprivileged(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("postgres"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
	}
	return cmd
}

// ownedDir makes a temporary directory the server user can write.
func ownedDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", fmt.Errorf("no postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// Start initialises and starts a cluster; Stop removes it. The superuser is
// "pbirefresh", trusted on loopback. Durability is off: these are
// throwaway clusters.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := binDir()
	if err != nil {
		need(tb, "PostgreSQL", err)
	}
	dir, err := ownedDir("pgtest")
	if err != nil {
		tb.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if out, err := asUnprivileged(filepath.Join(bin, "initdb"), "-D", data, "-U", "pbirefresh", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	s := &Server{dir: dir, bin: bin}
	for attempt := 0; ; attempt++ {
		if s.Port, err = FreePort(); err != nil {
			tb.Fatal(err)
		}
		cmd := asUnprivileged(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(s.Port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=off",
			"-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300",
			"-c", "shared_buffers=32MB", "-c", "log_min_messages=warning")
		logf, _ := os.Create(filepath.Join(dir, "postgres.log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		s.cmd = cmd
		if err := s.wait(15 * time.Second); err == nil {
			break
		} else if attempt >= 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			s.Stop()
			tb.Fatalf("postgres did not start: %v\n%s", err, log)
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	return s
}

// wait polls until the server accepts a connection, within timeout.
func (s *Server) wait(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, s.URL("postgres"))
		cancel()
		if err == nil {
			c.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is a libpq URL for a database of this server.
func (s *Server) URL(database string) string {
	return fmt.Sprintf("postgres://pbirefresh@127.0.0.1:%d/%s?sslmode=disable", s.Port, database)
}

var dbSeq struct {
	sync.Mutex
	n int
}

// NewDatabase creates an empty database and returns its URL.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	dbSeq.Lock()
	dbSeq.n++
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.n)
	dbSeq.Unlock()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	return s.URL(name)
}

// Stop stops the server and removes its files.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
	}
	os.RemoveAll(s.dir)
}

var shared struct {
	sync.Mutex
	s *Server
}

// Shared returns the test binary's one server, starting it on first use;
// StopShared (from TestMain) stops it.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.s == nil {
		shared.s = Start(tb)
	}
	return shared.s
}

// StopShared stops the shared server, if one was started.
func StopShared() {
	shared.Lock()
	defer shared.Unlock()
	if shared.s != nil {
		shared.s.Stop()
		shared.s = nil
	}
}

// Bouncer is PgBouncer in transaction mode in front of a server.
type Bouncer struct {
	Port int
	dir  string
	cmd  *exec.Cmd
}

// StartBouncer runs PgBouncer (pool_mode = transaction) in front of s.
func StartBouncer(tb testing.TB, s *Server) *Bouncer {
	tb.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		need(tb, "PgBouncer", err)
	}
	dir, err := ownedDir("pgbouncer")
	if err != nil {
		tb.Fatal(err)
	}
	b := &Bouncer{dir: dir}
	if b.Port, err = FreePort(); err != nil {
		tb.Fatal(err)
	}
	ini := fmt.Sprintf(`[databases]
* = host=127.0.0.1 port=%d
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s/users.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 500
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = %s/pgbouncer.log
pidfile = %s/pgbouncer.pid
`, s.Port, b.Port, dir, dir, dir)
	os.WriteFile(filepath.Join(dir, "users.txt"), []byte(`"pbirefresh" ""`+"\n"), 0o644)
	cfg := filepath.Join(dir, "pgbouncer.ini")
	os.WriteFile(cfg, []byte(ini), 0o644)
	if os.Geteuid() == 0 {
		u, _ := user.Lookup("postgres")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, f := range []string{"users.txt", "pgbouncer.ini"} {
			os.Chown(filepath.Join(dir, f), uid, gid)
		}
	}
	b.cmd = asUnprivileged(bin, cfg)
	if err := b.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.Port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			b.Stop()
			tb.Fatalf("pgbouncer did not start: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return b
}

// URL is the URL of a database through the bouncer.
func (b *Bouncer) URL(serverURL string) string {
	i := strings.LastIndex(serverURL, "/")
	db := serverURL[i+1:]
	return fmt.Sprintf("postgres://pbirefresh@127.0.0.1:%d/%s", b.Port, db)
}

// Stop stops PgBouncer and removes its files.
func (b *Bouncer) Stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { b.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.cmd.Process.Kill()
			<-done
		}
	}
	os.RemoveAll(b.dir)
}
