package refresh

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrBusy: another refresh of the dataset is running.
	ErrBusy = errors.New("another refresh of the dataset is already running")
	// ErrThrottled: the service kept answering 429 until the deadline.
	ErrThrottled = errors.New("throttled by the service")
	// ErrQuota: the shared-capacity daily refresh limit is used up.
	ErrQuota = errors.New("the dataset's daily refresh limit on shared capacity is used up")
)

// APIError is a Power BI answer that is not a success.
type APIError struct {
	Method, Path string
	Status       int
	Code         string // error.code, or Message for the 403 gateway shape
	Message      string
	RequestID    string // the service's RequestId header, for support cases
	RetryAfter   time.Duration
	hint         string
	sentinel     error
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s %s: %d", e.Method, e.Path, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RequestID != "" {
		s += " (RequestId " + e.RequestID + ")"
	}
	return s
}

// Hint names the fix for the operator.
func (e *APIError) Hint() string { return e.hint }

// Unwrap lets errors.Is find ErrBusy, ErrQuota, ErrThrottled.
func (e *APIError) Unwrap() error { return e.sentinel }

// classify sets the hint and sentinel from the status and code. A running
// refresh makes a POST fail with 400 "Another refresh request is already
// executing" (409 in the 2021 preview docs); the shared-capacity limit of 8
// a day with 400 "... exceeded limit"; see docs/powerbi.md, "Errors".
func (e *APIError) classify() {
	msg := strings.ToLower(e.Message)
	switch {
	case (e.Status == 400 && strings.Contains(msg, "already executing")) || e.Status == 409 && e.Method == "POST":
		e.sentinel = ErrBusy
		e.hint = "another refresh of this dataset is running (scheduled, portal or another tool); when_busy decides whether to wait, skip or fail"
	case e.Status == 400 && strings.Contains(msg, "exceeded limit"):
		e.sentinel = ErrQuota
		e.hint = "shared (Pro) capacity allows 8 refreshes a day counting scheduled ones: refresh less often, disable the dataset's own schedule, or move the workspace to Premium/PPU/Fabric capacity"
	case e.Status == 400 && strings.Contains(msg, "shared capacity"):
		e.hint = "enhanced refresh needs Premium, PPU, Embedded or Fabric capacity: remove the job's refresh: section for a classic refresh, or move the workspace"
	case e.Status == 429:
		e.sentinel = ErrThrottled
		e.hint = "Power BI is throttling this identity: poll less often (poll.min_interval), spread jobs out, or use separate app registrations"
	case e.Code == "ServicePrincipalIsNotAllowedByTenantAdminSwitch":
		e.hint = "enable \"Allow service principals to use Power BI APIs\" in the Power BI admin portal's tenant settings and add the app to the allowed security group"
	case e.Code == "TokenExpired":
		e.hint = "the access token expired; check that this host's clock is right"
	case e.Status == 401:
		e.hint = "the app is not authorised for this call: add it to the workspace as Member or Admin (Contributor at least, to refresh), and check the tenant setting \"Allow service principals to use Power BI APIs\""
	case e.Status == 403 && strings.Contains(strings.ToLower(e.Code), "not accessible for application"):
		e.hint = "service principals cannot use \"My workspace\": put the dataset in a workspace and set workspace_id"
	case e.Status == 403:
		e.hint = "access denied: give the app the Member or Admin role on the workspace"
	case e.Status == 404:
		e.hint = "the workspace or dataset was not found for this app: add the service principal to the workspace (Member or Admin) and check workspace_id and dataset_id"
	case e.Status >= 500:
		e.hint = "Power BI had an internal error; it usually passes, and the run is retried with backoff"
	}
}

var aadstsRE = regexp.MustCompile(`AADSTS(\d+)`)

// AuthError is a failure to get a token.
type AuthError struct {
	Credential string
	Code       int // the AADSTS number, 0 if none
	// Transient: the token service did not answer (network error) or
	// answered 5xx or 429. Nothing was decided about the credential, so a
	// caller may try again after a backoff.
	Transient bool
	Err       error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("get token for credential %q: %v", e.Credential, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// Hint names the fix for the common Entra ID answers.
func (e *AuthError) Hint() string {
	if e.Transient && e.Code != 0 {
		return "the token service is unavailable for now; it usually passes, and requests are retried with backoff until the job's timeout"
	}
	switch e.Code {
	case 7000215:
		return "the client secret is wrong: store the secret's Value (not its Secret ID) from the app registration's Certificates & secrets page"
	case 7000222:
		return "the client secret has expired: add a new secret to the app registration and store its value where client_secret points"
	case 700016:
		return "no app with this client_id in the tenant: check tenant_id and client_id on the app registration's overview page"
	case 90002:
		return "the tenant was not found: check tenant_id and the cloud setting"
	case 7000218:
		return "the app needs a client secret or certificate (or, for the password flow, \"Allow public client flows\")"
	case 700027:
		return "the certificate is not registered on the app: upload its public part under Certificates & secrets"
	case 700024:
		return "the client assertion is outside its valid time range: this host's clock is off; sync it (NTP, e.g. systemd-timesyncd or chrony)"
	case 50126:
		return "the username or password is wrong"
	case 50076, 50079:
		return "the user must use multi-factor authentication, which the password flow cannot do: switch to a service principal"
	case 50034:
		return "the user does not exist in this tenant"
	case 1002012, 70011:
		return "powerbi_scope must be the resource followed by /.default"
	}
	if e.Code == 0 {
		return "could not reach the token service: check network access to the authority host, proxies and the CA bundle"
	}
	return "see https://login.microsoftonline.com/error?code=" + strconv.Itoa(e.Code)
}

func aadsts(err error) int {
	if m := aadstsRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}
