package pgurl

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Conn is what libpq, and pgx whose parser follows libpq's, read from a
// postgres:// URL, as far as checking it needs.
type Conn struct {
	// Hosts are the hosts connected to, in order: a host query parameter
	// replaces the URL's; "" is libpq's default (a socket, else
	// localhost). nil: the URL names none (PGHOST would decide).
	Hosts []string
	// Params is the query, decoded: a repeated key's last value wins;
	// ssl=true stands for sslmode=require (SSLTrue).
	Params   map[string]string
	SSLTrue  bool
	Password bool // a password in the userinfo or the query (any of its values)
}

// Parse reads a URL as libpq's and pgx's parsers do (userinfo up to
// the first '@' before any '/', comma-separated hosts, IPv6 in brackets,
// percent-decoding with spaces trimmed), refusing what they refuse. Its
// errors never quote the URL: it may hold a password.
func Parse(s string) (Conn, error) {
	c := Conn{Params: map[string]string{}}
	if strings.IndexByte(s, 0) >= 0 {
		return c, errors.New("it holds a NUL byte")
	}
	p, ok := strings.CutPrefix(s, "postgresql://")
	if !ok {
		if p, ok = strings.CutPrefix(s, "postgres://"); !ok {
			return c, errors.New("it does not begin with postgres:// or postgresql://")
		}
	}
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		user, pw, has := strings.Cut(p[:i], ":")
		c.Password = has && pw != ""
		if _, err := decode(user); err != nil {
			return c, fmt.Errorf("the user: %w", err)
		}
		if _, err := decode(pw); err != nil {
			return c, fmt.Errorf("the password: %w", err)
		}
		p = p[i+1:]
	}
	var hostList, portList strings.Builder
	for {
		if strings.HasPrefix(p, "[") {
			end := strings.IndexByte(p, ']')
			switch {
			case end < 0:
				return c, errors.New("an IPv6 address has no closing ]")
			case end == 1:
				return c, errors.New("an IPv6 address is empty")
			}
			hostList.WriteString(p[1:end])
			p = p[end+1:]
			if p != "" && !strings.ContainsRune(":/?,", rune(p[0])) {
				return c, errors.New("an IPv6 address in brackets is followed by something other than :port, / or ?")
			}
		} else {
			i := strings.IndexAny(p, ":/?,")
			if i < 0 {
				i = len(p)
			}
			hostList.WriteString(p[:i])
			p = p[i:]
		}
		if strings.HasPrefix(p, ":") {
			i := strings.IndexAny(p[1:], "/?,")
			if i < 0 {
				i = len(p) - 1
			}
			portList.WriteString(p[1 : i+1])
			p = p[i+1:]
		}
		if !strings.HasPrefix(p, ",") {
			break
		}
		p = p[1:]
		hostList.WriteByte(',')
		portList.WriteByte(',')
	}
	settings := map[string]string{}
	if hostList.Len() > 0 {
		h, err := decode(hostList.String())
		if err != nil {
			return c, fmt.Errorf("the host: %w", err)
		}
		settings["host"] = h
	}
	if portList.Len() > 0 {
		pt, err := decode(portList.String())
		if err != nil {
			return c, fmt.Errorf("the port: %w", err)
		}
		settings["port"] = pt
	}
	if db, ok := strings.CutPrefix(p, "/"); ok {
		p = ""
		if i := strings.IndexByte(db, '?'); i >= 0 {
			db, p = db[:i], db[i:]
		}
		if _, err := decode(db); err != nil {
			return c, fmt.Errorf("the database: %w", err)
		}
	}
	if query, ok := strings.CutPrefix(p, "?"); ok {
		sslLast := false
		for query != "" {
			pair := query
			if i := strings.IndexByte(query, '&'); i >= 0 {
				pair, query = query[:i], query[i+1:]
			} else {
				query = ""
			}
			rawKey, rawValue, found := strings.Cut(pair, "=")
			if !found || strings.Contains(rawValue, "=") {
				return c, errors.New("a query parameter is not key=value")
			}
			key, err := decode(rawKey)
			if err != nil {
				return c, fmt.Errorf("a query key: %w", err)
			}
			if key == "dbname" {
				key = "database"
			}
			value, err := decode(rawValue)
			if err != nil {
				return c, fmt.Errorf("the value of %s: %w", strconv.Quote(key), err)
			}
			switch key {
			case "ssl":
				sslLast = true
			case "sslmode":
				sslLast = false
			case "password":
				c.Password = c.Password || value != ""
			}
			c.Params[key] = value
		}
		if c.Params["ssl"] == "true" {
			delete(c.Params, "ssl")
			if sslLast {
				c.Params["sslmode"], c.SSLTrue = "require", true
			}
		}
		for k, val := range c.Params {
			if k == "host" || k == "port" {
				settings[k] = val
			}
		}
	}
	h, ok := settings["host"]
	if !ok {
		return c, nil // PGHOST or libpq's default would decide
	}
	c.Hosts = strings.Split(h, ",")
	ports := strings.Split(settings["port"], ",")
	if len(ports) > 1 && len(ports) != len(c.Hosts) {
		return c, fmt.Errorf("%d ports for %d hosts", len(ports), len(c.Hosts))
	}
	for _, pt := range ports {
		if n, err := strconv.ParseUint(pt, 10, 16); pt != "" && (err != nil || n == 0) {
			return c, errors.New("a port is not a number from 1 to 65535")
		}
	}
	return c, nil
}

// decode percent-decodes a URL component as libpq does: %XX with two
// hex digits (not %00), spaces around it dropped, none inside. Its errors
// do not quote the component.
func decode(raw string) (string, error) {
	raw = strings.Trim(raw, " ")
	if strings.Contains(raw, " ") {
		return "", errors.New("spaces inside a component must be written %20")
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		if raw[i] != '%' {
			b.WriteByte(raw[i])
			continue
		}
		if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
			return "", errors.New("a % is not followed by two hex digits")
		}
		n, _ := strconv.ParseUint(raw[i+1:i+3], 16, 8)
		if n == 0 {
			return "", errors.New("%00 is not allowed")
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Redact hides the passwords of a connection string before a message
// quotes it: a URL's userinfo password and its password and sslpassword
// query parameters, found as libpq parses a URL (the userinfo ends at the
// first '@' before any '/'; a query key is percent-decoded, so pass%77ord
// is a password too), or a keyword/value string's password and
// sslpassword values. A password holding an unencoded '@', '/' or '?'
// strands part of itself past the userinfo, as a host, a database or a
// query value: so everything before the last '@' that remains after the
// userinfo is hidden as well.
func Redact(s string) string {
	prefix := "postgresql://"
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		prefix = "postgres://"
		if rest, ok = strings.CutPrefix(s, prefix); !ok {
			if i := strings.Index(s, "://"); i >= 0 && !strings.ContainsAny(s[:i], "/?@ =") {
				prefix, rest = s[:i+3], s[i+3:] // another scheme: hide alike
			} else {
				return kvPassword.ReplaceAllString(s, "${1}=REDACTED")
			}
		}
	}
	var b strings.Builder
	b.WriteString(prefix)
	if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
		user, _, hasPassword := strings.Cut(rest[:i], ":")
		b.WriteString(user)
		if hasPassword {
			b.WriteString(":REDACTED")
		}
		b.WriteByte('@')
		rest = rest[i+1:]
	}
	if q := queryStart(rest); q >= 0 {
		pairs := strings.Split(rest[q+1:], "&")
		for i, pair := range pairs {
			if key, _, has := strings.Cut(pair, "="); has && secretKey(key) {
				pairs[i] = key + "=REDACTED"
			}
		}
		rest = rest[:q+1] + strings.Join(pairs, "&")
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = "REDACTED" + rest[i:]
	}
	b.WriteString(rest)
	return b.String()
}

// kvPassword finds the password and sslpassword values of a keyword/value
// connection string: quoted (backslash escapes) or up to a space.
var kvPassword = regexp.MustCompile(`(?i)\b((?:ssl)?password)\s*=\s*('(?:[^'\\]|\\.)*'?|(?:\\.|[^\s\\])*)`)

// queryStart is the index of the '?' that begins a URL's query, in what
// follows the scheme and userinfo, as libpq finds it: a host in brackets
// (IPv6) may hold a '?' of its own. -1: no query.
func queryStart(p string) int {
	i := 0
	for {
		if i < len(p) && p[i] == '[' {
			end := strings.IndexByte(p[i:], ']')
			if end < 0 {
				return strings.IndexByte(p, '?') // unparseable: the widest query
			}
			i += end + 1
		}
		for i < len(p) && p[i] != '/' && p[i] != '?' && p[i] != ',' {
			i++
		}
		if i < len(p) && p[i] == ',' {
			i++
			continue
		}
		break
	}
	if i < len(p) && p[i] == '/' {
		if j := strings.IndexByte(p[i:], '?'); j >= 0 {
			return i + j
		}
		return -1
	}
	if i < len(p) {
		return i
	}
	return -1
}

// secretKey: a query key that libpq decodes to password or sslpassword
// (valid %XX escapes decoded, surrounding spaces dropped; in any case, to
// be safe).
func secretKey(raw string) bool {
	raw = strings.Trim(raw, " ")
	var k strings.Builder
	for i := 0; i < len(raw); i++ {
		if raw[i] == '%' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]) {
			n, _ := strconv.ParseUint(raw[i+1:i+3], 16, 8)
			k.WriteByte(byte(n))
			i += 2
			continue
		}
		k.WriteByte(raw[i])
	}
	return strings.EqualFold(k.String(), "password") || strings.EqualFold(k.String(), "sslpassword")
}
