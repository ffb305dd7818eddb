package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Parse reads a response's Retry-After header, in delay-seconds or as an
// HTTP date (RFC 9110, section 10.2.3), as a wait from now. It is 0 when
// the header is absent, unreadable, negative or in the past.
func Parse(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
