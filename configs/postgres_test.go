package configs

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pbirefresh/pbirefresh/internal/pgurl"
)

// pgState is a configuration whose state is in PostgreSQL at url.
func pgState(url string) string {
	return "state: {postgres: {url: " + strictQuote(url) + "}}\n" + oneJob
}

func strictQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// TestPostgresTLSVerified: a database beyond this host is reached only
// with sslmode=verify-full (or sslrootcert=system, which implies it), as
// libpq and pgx read the URL: the last of a repeated key, ssl=true, a host
// given in the query (which replaces the URL's, percent-encoded key or
// not), every host of a list. A database on this host (loopback, a socket
// path, libpq's default host) keeps any sslmode. Each refusal says why
// and gives the exact fix.
func TestPostgresTLSVerified(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		// Accepted.
		{"postgres://u@db.example.com/x?sslmode=verify-full", ""},
		{"postgresql://u@db.example.com:5432/x?sslmode=verify-full&sslrootcert=/etc/pbirefresh/ca.pem", ""},
		{"postgres://pbirefresh-identity@contoso-pg.postgres.database.azure.com:5432/pbirefresh?sslmode=verify-full", ""},
		{"postgres://u@db.example.com/x?sslrootcert=system", ""},
		{"postgres://u@db.example.com/x?sslmode=require&sslmode=verify-full", ""},
		{"postgres://u@h1.example.com,h2.example.com:5433/x?sslmode=verify-full", ""},
		{"postgres://u@127.0.0.1/x", ""},
		{"postgres://pbirefresh@127.0.0.1:40000/t1_1?sslmode=disable", ""}, // store/postgres/pgtest
		{"postgres://u@localhost:5432/x?sslmode=prefer", ""},
		{"postgres://u@[::1]:5432/x?sslmode=require", ""},
		{"postgres://u@127.0.0.1,localhost,[::1]/x?sslmode=allow", ""},
		{"postgres://u@/x?host=/var/run/postgresql", ""},
		{"postgres://u@/x?host=/tmp&sslmode=disable", ""},
		{"postgres://u@db.example.com/x?host=127.0.0.1", ""},
		{"postgres://u@,/x?sslmode=disable", ""}, // libpq's default host, twice
		// Refused.
		{"postgres://u@db.example.com/x", `url sets no sslmode: libpq's default (prefer) falls back to clear text and never verifies the certificate of "db.example.com"`},
		{"postgres://u@db.example.com/x?sslmode=", "url sets no sslmode"},
		{"postgres://u@db.example.com/x?sslmode=disable", `sslmode=disable sends the state database's traffic in clear text (to "db.example.com")`},
		{"postgres://u@db.example.com/x?sslmode=allow", "sslmode=allow tries clear text first"},
		{"postgres://u@db.example.com/x?sslmode=prefer", "sslmode=prefer falls back to clear text"},
		{"postgres://u@db.example.com/x?sslmode=require", `sslmode=require encrypts but checks neither that the certificate names "db.example.com"`},
		{"postgres://u@db.example.com/x?sslmode=require&sslrootcert=/etc/ca.pem", "sslmode=require encrypts"},
		{"postgres://u@db.example.com/x?ssl=true", "ssl=true (sslmode=require) encrypts"},
		{"postgres://u@db.example.com/x?sslmode=verify-ca&sslrootcert=/etc/ca.pem", "sslmode=verify-ca does not check the name"},
		{"postgres://u@db.example.com/x?sslmode=verify-full&sslmode=require", "sslmode=require encrypts"},
		{"postgres://u@db.example.com/x?sslrootcert=system&sslmode=require", "sslmode=require encrypts"},
		{"postgres://u@127.0.0.1/x?host=db.example.com", `url sets no sslmode: libpq's default (prefer) falls back to clear text and never verifies the certificate of "db.example.com"`},
		{"postgres://u@127.0.0.1/x?ho%73t=db.example.com&sslmode=disable", `in clear text (to "db.example.com")`},
		{"postgres://u@127.0.0.1,db.example.com,localhost/x?sslmode=prefer", `never verifies the certificate of "db.example.com"`},
		{"postgres://u@/x?host=/tmp,db1.example.com,db2.example.com&sslmode=require", `names "db1.example.com", "db2.example.com" nor`},
		{"postgres://u@[2001:db8::1]:5432/x?sslmode=disable", `in clear text (to "2001:db8::1")`},
		{"postgres://u@localhost.evil.example/x", "url sets no sslmode"},
		{"postgres://u@127.0.0.1/x?sslmode=verify_full", `unknown sslmode "verify_full"; use sslmode=verify-full`},
		// Not a URL pgx reads, or no host.
		{"POSTGRES://u@db.example.com/x?sslmode=verify-full", "is not a postgres:// URL: it does not begin with postgres:// or postgresql://"},
		{"postgres://u@/x?sslmode=verify-full", "names no host"},
		{"postgres://u@:5432/x?sslmode=verify-full", "names no host"},
		{"postgres://u@db.example.com/x?sslmode", "is not a postgres:// URL: a query parameter is not key=value"},
		{"postgres://u@db.example.com/x?sslmode=verify-full&&a=b", "a query parameter is not key=value"},
		{"postgres://u@db.example.com:99999/x?sslmode=verify-full", "a port is not a number from 1 to 65535"},
		{"postgres://u@h1,h2/x?port=1,2,3&sslmode=verify-full", "is not a postgres:// URL: 3 ports for 2 hosts"},
		{"postgres://u@[::1/x", "an IPv6 address has no closing ]"},
		{"postgres://u@db.example.com/x y?sslmode=verify-full", "the database: spaces inside a component must be written %20"},
	} {
		_, err := Parse("c.yaml", []byte(pgState(c.url)))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.url, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.url, err, c.want)
		case strings.Contains(c.want, "sslmode=") && !strings.Contains(c.want, "unknown") && !strings.Contains(err.Error(), "; use sslmode=verify-full in the URL: ...?sslmode=verify-full&sslrootcert=/path/ca.pem"):
			t.Errorf("%s: %v: no fix", c.url, err)
		}
	}
}

// TestPostgresTLSProblemLine: the whole line, with the file, line and
// column of the url, the problem and the fix.
func TestPostgresTLSProblemLine(t *testing.T) {
	_, err := Parse("c.yaml", []byte(pgState("postgres://u@db.example.com/x?sslmode=require")))
	want := `c.yaml:1:25: sslmode=require encrypts but checks neither that the certificate names "db.example.com" nor, without sslrootcert, who signed it: ` +
		`whoever is on the path can pose as the database; use sslmode=verify-full in the URL: ...?sslmode=verify-full&sslrootcert=/path/ca.pem ` +
		`(sslrootcert: the server's CA; without it, the system's roots verify the server); only a database on this host (localhost, 127.0.0.1, ::1, a socket) may do without verification`
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}

// TestPostgresPasswordNeverEchoed: a password in the URL, in the userinfo
// or in the query (any spelling libpq decodes to password), is refused
// the same way, and no error quotes it, even when the URL does not parse.
func TestPostgresPasswordNeverEchoed(t *testing.T) {
	const fix = "remove the password from the URL and reference it: password: {env: PGPASSWORD_VAR} or {file: ...} or {keyvault: {...}}"
	for _, c := range []struct {
		url     string
		refused bool // "a password is written in the URL"
	}{
		{"postgres://u:hunter2@db.example.com/x?sslmode=verify-full", true},
		{"postgres://u:hunter%32@db.example.com/x?sslmode=verify-full", true},
		{"postgres://u@db.example.com/x?sslmode=verify-full&password=hunter2", true},
		{"postgres://u@db.example.com/x?password=hunter2&sslmode=verify-full", true},
		{"postgres://u@db.example.com/x?pass%77ord=hunter2&sslmode=verify-full", true},
		{"postgres://u@db.example.com/x?password=hunter2", true},         // and no sslmode
		{"postgres://u@db.example.com/x?password=hunter2&sslmode", true}, // and does not parse
		{"postgres://u:hun@ter2@db.example.com/x?sslmode=verify-full", true},
		{"postgres://u:hun ter2@db.example.com/x?sslmode=verify-full", true},
		{"postgres://u@db.example.com/x?sslpassword=hunter2&sslmode", false},
		{"postgres://u@[::1/x?password=hunter2", false},
		{"POSTGRES://u:hunter2@db.example.com/x", false},
		{"mysql://u:hunter2@h/x", false},
		{"mysql://u@h/x?password=hunter2", false},
		{"host=db.example.com password=hunter2 sslmode=verify-full", false},
		{"host=db.example.com password='hun ter2' sslmode=verify-full", false},
	} {
		_, err := Parse("c.yaml", []byte(pgState(c.url)))
		switch {
		case err == nil:
			t.Errorf("%s: accepted", pgurl.Redact(c.url))
		case strings.Contains(err.Error(), "hun") || strings.Contains(err.Error(), "ter2"):
			t.Errorf("%s: an error quotes the password", pgurl.Redact(c.url))
		case c.refused && !strings.Contains(err.Error(), "a password is written in the URL; "+fix):
			t.Errorf("%s: %v, want the password refused", pgurl.Redact(c.url), err)
		}
	}
}

// clearPGEnv keeps the environment out of pgconn.ParseConfig, so that it
// reads only the URL (and the default host).
func clearPGEnv(tb interface{ Setenv(k, v string) }, dir string) {
	for _, k := range []string{"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSSLMODE", "PGSSLKEY", "PGSSLCERT", "PGSSLCERTMODE",
		"PGSSLSNI", "PGSSLROOTCERT", "PGSSLPASSWORD", "PGSSLNEGOTIATION", "PGTARGETSESSIONATTRS", "PGSERVICE", "PGSERVICEFILE",
		"PGOPTIONS", "PGCHANNELBINDING", "PGREQUIREAUTH", "PGMINPROTOCOLVERSION", "PGMAXPROTOCOLVERSION", "PGCONNECT_TIMEOUT"} {
		tb.Setenv(k, "") // restored after the test
		os.Unsetenv(k)   // an empty PGSSLCERTMODE is an error
	}
	tb.Setenv("PGPASSFILE", filepath.Join(dir, "no-pgpass"))
}

// agreesWithPgx checks the validator's reading of a URL against pgx's
// own: what the validator refuses as not a URL pgx refuses too; the hosts
// are pgx's; a password pgx found in the URL is refused; and a URL whose
// TLS passes reaches every host beyond this one only with the server's
// certificate and name verified.
// It says whether it compared them (pgx read the URL, naming a host).
func agreesWithPgx(t *testing.T, s string) bool {
	c, err := pgurl.Parse(s)
	cfg, pgxErr := pgconn.ParseConfig(s)
	if err != nil {
		if pgxErr == nil {
			t.Fatalf("%q: refused (%v), but pgx reads it", s, err)
		}
		return false
	}
	if pgxErr != nil || c.Hosts == nil {
		return false // a file it names, a runtime setting; or the default host
	}
	if cfg.Password != "" && !c.Password {
		t.Fatalf("%q: pgx finds a password the validator does not", s)
	}
	type target struct {
		host string
		tls  *tls.Config
	}
	all := []target{{cfg.Host, cfg.TLSConfig}}
	for _, f := range cfg.Fallbacks {
		all = append(all, target{f.Host, f.TLSConfig})
	}
	// One host is one target, or two for allow and prefer: with TLS and
	// without.
	var hosts []string
	for i := 0; i < len(all); i++ {
		hosts = append(hosts, all[i].host)
		if i+1 < len(all) && all[i+1].host == all[i].host && (all[i].tls == nil) != (all[i+1].tls == nil) {
			i++
		}
	}
	if len(hosts) != len(c.Hosts) {
		t.Fatalf("%q: hosts %q, pgx's %q", s, c.Hosts, hosts)
	}
	for i, h := range c.Hosts {
		if h != hosts[i] && !(h == "" && localHost(hosts[i])) {
			t.Fatalf("%q: hosts %q, pgx's %q", s, c.Hosts, hosts)
		}
	}
	if problem, _ := pgTLS(c); problem != "" {
		return true
	}
	for _, a := range all {
		if localHost(a.host) {
			continue
		}
		if a.tls == nil || a.tls.InsecureSkipVerify || a.tls.VerifyPeerCertificate != nil || a.tls.ServerName != a.host {
			t.Fatalf("%q: accepted, but pgx reaches %q without verifying its certificate and name", s, a.host)
		}
	}
	return true
}

var pgSeeds = []string{
	"postgres://u@db.example.com/x?sslmode=verify-full",
	"postgres://u@db.example.com/x",
	"postgres://u@db.example.com/x?sslmode=require&ssl=true",
	"postgres://u@db.example.com/x?ssl=true&sslmode=verify-full",
	"postgres://u@db.example.com/x?sslmode=verify-full&ssl=true",
	"postgres://u@db.example.com/x?sslrootcert=system",
	"postgres://u@db.example.com/x?sslrootcert=system&sslmode=disable",
	"postgres://u@127.0.0.1/x?host=db.example.com",
	"postgres://u@127.0.0.1/x?ho%73t=db.example.com&sslmode=prefer",
	"postgres://u@127.0.0.1,db.example.com:5433/x?sslmode=allow",
	"postgres://u@127.0.0.1:1,db.example.com:2/x?sslmode=verify-full",
	"postgres://u@/x?host=/tmp,db.example.com&sslmode=require",
	"postgres://u@[::1]:5432,[2001:db8::1]/x?sslmode=verify-ca",
	"postgres://u@,/x?port=1,2&sslmode=disable",
	"postgresql://u:p%40ss@db.example.com/x?sslmode=verify-full",
	"postgres://u@db.example.com/x?pass%77ord=pw&sslmode=verify-full",
	"postgres://u@db.example.com/x?sslmode=verify-full&sslnegotiation=direct",
	"postgres://u@db.example.com/x?sslmode=verify-full&sslmode=",
	"postgres://u@db.example.com/x?sslmode=%20verify-full%20",
	"postgres://u@db.example.com/x?sslmode=verify-full&",
	"postgres://u@db.example.com/x?&sslmode=verify-full",
	"postgres://u@localhost/x?sslmode=verify-ful",
	"postgres://u@db.example.com:0/x?sslmode=verify-full",
	"postgres://u@db.example.com:65536/x?sslmode=verify-full",
	"postgres://u@db.example.com/x?sslmode=verify-full&dbname=y",
	"postgres://a@u:sec:ret@h/x",
	"postgres://u@[::1]x/y",
	"postgres://u@db.example.com/x%00?sslmode=verify-full",
	"postgres://u@h,h/x",
	"postgres://u@h,h/x?sslmode=allow",
	"postgres://u@h,h/x?sslmode=disable",
	"postgres://u@/x?host=/tmp,h,,/run",
}

// TestPostgresURLAgreesWithPgx: the validator reads these URLs as pgx
// does; FuzzPostgresURL looks for one it does not.
func TestPostgresURLAgreesWithPgx(t *testing.T) {
	clearPGEnv(t, t.TempDir())
	compared := 0
	for _, s := range pgSeeds {
		if agreesWithPgx(t, s) {
			compared++
		}
	}
	if compared < len(pgSeeds)/2 {
		t.Fatalf("pgx read only %d of the %d URLs", compared, len(pgSeeds))
	}
}

func FuzzPostgresURL(f *testing.F) {
	for _, s := range pgSeeds {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, s string) {
		clearPGEnv(t, dir)
		if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
			return
		}
		agreesWithPgx(t, s)
		// A password pgx finds, written once in the URL as it is, is never
		// quoted.
		if cfg, err := pgconn.ParseConfig(s); err == nil && len(cfg.Password) >= 4 && strings.Count(s, cfg.Password) == 1 && strings.Contains(pgurl.Redact(s), cfg.Password) {
			t.Fatalf("%q: redactURL quotes the password", s)
		}
	})
}
