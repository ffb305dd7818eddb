// Package retryafter reads the Retry-After header that Power BI and
// webhook receivers send with 429 and 503 answers. One home, so that the
// refresh client and the notifier read it alike.
package retryafter
