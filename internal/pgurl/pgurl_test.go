package pgurl

import (
	"strings"
	"testing"
)

// TestRedact: every password a connection string can carry is hidden
// (userinfo, percent-encoded, in the query under any spelling libpq
// decodes to password or sslpassword, stranded past the userinfo by an
// unencoded '@' or '/', keyword/value), and the rest stays readable.
func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://u@db.example.com:5432/x?sslmode=verify-full", "postgres://u@db.example.com:5432/x?sslmode=verify-full"},
		{"postgres://u:SECRET@db/x", "postgres://u:REDACTED@db/x"},
		{"postgresql://u:SE%40CRET@db/x", "postgresql://u:REDACTED@db/x"},
		{"postgres://u@db/x?sslmode=verify-full&password=SECRET", "postgres://u@db/x?sslmode=verify-full&password=REDACTED"},
		{"postgres://u@db/x?pass%77ord=SECRET&sslpassword=SECRET", "postgres://u@db/x?pass%77ord=REDACTED&sslpassword=REDACTED"},
		{"postgres://u@db?password=SECRET&sslmode=require", "postgres://u@db?password=REDACTED&sslmode=require"},
		{"postgres://u@[::1]:5432/x?password=SECRET", "postgres://u@[::1]:5432/x?password=REDACTED"},
		{"postgres://u@h1,h2:5433/x?password=SECRET", "postgres://u@h1,h2:5433/x?password=REDACTED"},
		{"postgres://u:SEC@RET@db/x", "postgres://u:REDACTED@REDACTED@db/x"},
		{"postgres://u:12/SECRET@db/x", "postgres://REDACTED@db/x"},
		{"postgres://u:12/3?a=SECRET@db", "postgres://REDACTED@db"},
		{"postgres://u:pw@db/x?password=SECRET@y", "postgres://u:REDACTED@db/x?password=REDACTED"},
		{"postgres://u@db/x?application_name=a@b&password=SECRET", "postgres://u@REDACTED@b&password=REDACTED"},
		{"postgres://u@[::1?]:5432/x?password=SECRET", "postgres://u@[::1?]:5432/x?password=REDACTED"},
		{"mysql://u:SECRET@h/x?password=SECRET", "mysql://u:REDACTED@h/x?password=REDACTED"},
		{"host=db password=SECRET sslmode=verify-full", "host=db password=REDACTED sslmode=verify-full"},
		{"host=db password = 'SE CR\\'ET' sslpassword=SECRET", "host=db password=REDACTED sslpassword=REDACTED"},
	} {
		got := Redact(c.in)
		if got != c.want || strings.Contains(got, "SECRET") || strings.Contains(got, "CR") {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
