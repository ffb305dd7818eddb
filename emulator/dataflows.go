package emulator

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"
)

// Dataflows: refresh, transactions, cancel, and the dataset → dataflow
// links. https://learn.microsoft.com/rest/api/power-bi/dataflows

type dfState struct {
	df        Dataflow
	ws        *wsState
	behaviour Behaviour
	txns      []*txn // oldest first, at most historyCap
	seq       int
}

// txn is one dataflow refresh transaction, planned at start like a dataset
// refresh.
type txn struct {
	id          string
	refreshType string // OnDemand (API or portal) or Scheduled
	viaAPI      bool
	start, end  time.Time
	visibleAt   time.Time
	failed      bool
	cancelledAt time.Time
}

// Shared capacity allows 8 dataflow refreshes in 24 hours; the service then
// skips the refresh with DailyDataflowRefreshLimitExceeded.
const sharedDataflowDaily = 8

// status uses free strings: the spec types status as a plain string and
// enumerates no values, so InProgress, Success, Failed and Cancelled are
// the emulator's choice (a client should treat any other value as still
// running until its deadline).
func (t *txn) status(now time.Time) (string, time.Time) {
	switch {
	case !t.cancelledAt.IsZero() && !t.cancelledAt.After(now) && t.cancelledAt.Before(t.end):
		return "Cancelled", t.cancelledAt
	case now.Before(t.end):
		return "InProgress", time.Time{}
	case t.failed:
		return "Failed", t.end
	default:
		return "Success", t.end
	}
}

func (t *txn) visible(now time.Time) bool { return !now.Before(t.visibleAt) }

// countsToQuota: API and scheduled refreshes count against the shared daily
// limit; a portal refresh is assumed not to, as for datasets.
func (t *txn) countsToQuota() bool { return t.viaAPI || t.refreshType == typeScheduled }

func (df *dfState) running(now time.Time) bool {
	for _, t := range df.txns {
		if st, _ := t.status(now); st == "InProgress" {
			return true
		}
	}
	return false
}

func (df *dfState) quotaUsed(now time.Time) int {
	n := 0
	for _, t := range df.txns {
		if d := now.Sub(t.start); t.countsToQuota() && d >= 0 && d < 24*time.Hour {
			n++
		}
	}
	return n
}

// startTxn records a transaction. Must hold e.mu.
//
// Ids look like the spec's examples, "2020-08-27T16:07:47.2487692Z@<guid>$2":
// start time, a GUID and a sequence number. In those examples the GUID is
// neither the dataflow's id nor the same for two transactions of one
// dataflow, so each transaction gets a new one; the number counts the
// dataflow's transactions.
func (e *Emulator) startTxn(df *dfState, kind string, viaAPI bool, b Behaviour, now, visibleAt time.Time) *txn {
	df.seq++
	t := &txn{
		refreshType: kind, viaAPI: viaAPI, start: now, visibleAt: visibleAt,
		end: now.Add(b.Duration.draw(e.rng)), failed: b.Outcome == "failed",
	}
	t.id = fmt.Sprintf("%s@%s$%d", fmtTime(now), newGUID(), df.seq)
	df.txns = append(df.txns, t)
	if len(df.txns) > historyCap {
		df.txns = append(df.txns[:0:0], df.txns[len(df.txns)-historyCap:]...)
	}
	return t
}

func (e *Emulator) dataflowFor(w http.ResponseWriter, r *http.Request, cl *claims) (*dfState, string) {
	ws, role := e.workspaceFor(w, r, cl)
	if ws == nil {
		return nil, ""
	}
	df := e.dataflows[strings.ToLower(r.PathValue("dataflowId"))]
	if df == nil || df.ws != ws {
		notFound(w)
		return nil, ""
	}
	return df, role
}

// dataflowNotifyOptions: "MailOnCompletion isn't supported" for dataflows.
var dataflowNotifyOptions = []string{"NoNotification", "MailOnFailure"}

// parseDataflowRefreshRequest validates a dataflow refresh body, a
// RefreshRequest: {"notifyOption": "NoNotification" | "MailOnFailure"}.
// The spec marks notifyOption required and the REST page lists it as the
// body's one required property (the swagger flags the body parameter
// itself optional), so a missing body or a body without notifyOption is
// refused: a client that always sends it works either way.
func parseDataflowRefreshRequest(body []byte) (string, *requestError) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return "", badRequest(`The request body is required: send {"notifyOption": "NoNotification"} (or "MailOnFailure").`)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return "", badRequest("The request body is not a valid JSON object.")
	}
	for k := range fields {
		if k != "notifyOption" {
			return "", badRequest("%q is not a property of a dataflow refresh request; it takes only notifyOption", k)
		}
	}
	raw, ok := fields["notifyOption"]
	if !ok {
		return "", badRequest(`notifyOption is required: send {"notifyOption": "NoNotification"} (or "MailOnFailure").`)
	}
	return enumValue(raw, "notifyOption", dataflowNotifyOptions)
}

// dataflowRefresh starts a dataflow refresh: 200 with an empty body, as
// the spec documents (not 202), and no transaction id.
// https://learn.microsoft.com/rest/api/power-bi/dataflows/refresh-dataflow
func (e *Emulator) dataflowRefresh(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	if len(strings.TrimSpace(string(c.body))) > 0 {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct != "application/json" && ct != "text/json" {
			pbiError(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "The request entity's media type '"+ct+"' is not supported for this resource; send application/json.")
			return
		}
	}
	_, rerr := parseDataflowRefreshRequest(c.body)
	if pt := r.URL.Query().Get("processType"); pt != "" && !strings.EqualFold(pt, "default") && !strings.EqualFold(pt, "processFull") && rerr == nil {
		rerr = badRequest("processType must be default or processFull.")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	df, role := e.dataflowFor(w, r, cl)
	if df == nil {
		return
	}
	if !canWrite(role) {
		pbiError(w, http.StatusUnauthorized, "PowerBINotAuthorizedException", "")
		return
	}
	if rerr != nil {
		pbiError(w, rerr.status, "InvalidRequest", rerr.msg)
		return
	}
	if df.running(c.now) {
		// The status and message for a busy dataflow are not documented;
		// they mirror the dataset refresh's.
		pbiError(w, http.StatusBadRequest, "InvalidRequest", "Invalid dataflow refresh request. Another refresh request is already executing")
		return
	}
	if df.ws.ws.Capacity != "premium" && df.quotaUsed(c.now) >= sharedDataflowDaily {
		// Code and text as the service reports the skipped refresh; that it
		// refuses the POST with 400 (rather than recording a failed
		// transaction) is the emulator's choice, the clearer signal.
		pbiError(w, http.StatusBadRequest, "DailyDataflowRefreshLimitExceeded",
			fmt.Sprintf("Skipping dataflow refresh as number of auto refreshes in last 24 hours (%d) exceeded allowed limit %d", df.quotaUsed(c.now), sharedDataflowDaily))
		return
	}
	// API refreshes are reported as OnDemand, the refreshType of the
	// spec's example; what the service reports for them is unconfirmed.
	t := e.startTxn(df, typeOnDemand, true, df.behaviour, c.now, c.now.Add(e.sc.Settings.TransactionDelay.D()))
	c.entry.RefreshID = t.id
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// txnJSON is a DataflowTransaction of the spec.
type txnJSON struct {
	ID          string `json:"id"`
	RefreshType string `json:"refreshType"`
	StartTime   string `json:"startTime"`
	EndTime     string `json:"endTime,omitempty"`
	Status      string `json:"status"`
}

// dataflowTransactions lists the transactions, newest first; one still
// inside settings.transaction_delay is left out.
func (e *Emulator) dataflowTransactions(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	e.mu.Lock()
	df, _ := e.dataflowFor(w, r, cl)
	if df == nil {
		e.mu.Unlock()
		return
	}
	list := []txnJSON{}
	for i := len(df.txns) - 1; i >= 0; i-- {
		t := df.txns[i]
		if !t.visible(c.now) {
			continue
		}
		st, end := t.status(c.now)
		j := txnJSON{ID: t.id, RefreshType: t.refreshType, StartTime: fmtTime(t.start), Status: st}
		if !end.IsZero() {
			j.EndTime = fmtTime(end)
		}
		list = append(list, j)
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": e.odataContext(r, "transactions"), "value": list})
}

// dataflowCancel is POST .../dataflows/transactions/{transactionId}/cancel.
// The id holds '@', '$' and ':'; clients percent-encode it or not, and
// PathValue returns it decoded either way. The status values are the
// spec's enum.
func (e *Emulator) dataflowCancel(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ws, role := e.workspaceFor(w, r, cl)
	if ws == nil {
		return
	}
	if !canWrite(role) {
		pbiError(w, http.StatusUnauthorized, "PowerBINotAuthorizedException", "")
		return
	}
	id := r.PathValue("transactionId")
	c.entry.RefreshID = id
	status := "notFound"
	for _, df := range ws.dataflows {
		for _, t := range df.txns {
			if t.id != id || !t.visible(c.now) {
				continue
			}
			if st, _ := t.status(c.now); st == "InProgress" {
				t.cancelledAt = c.now
				status = "successfullyMarked"
			} else {
				status = "alreadyConcluded"
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"transactionId": id, "status": status})
}

// StartExternalTransaction starts a dataflow refresh that did not come
// through this API: refreshType Scheduled (the service's scheduler) or
// OnDemand (someone else, or the portal), lasting d (0: the dataflow's
// behaviour). It is visible at once and, like StartExternalRefresh, ignores
// the one-at-a-time rule. A client must never mistake it for its own. It
// returns the transaction id.
func (e *Emulator) StartExternalTransaction(dataflowID, refreshType string, d time.Duration) (string, error) {
	if refreshType != typeScheduled && refreshType != typeOnDemand {
		return "", fmt.Errorf("refresh type %q: use %s or %s", refreshType, typeScheduled, typeOnDemand)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	df := e.dataflows[strings.ToLower(dataflowID)]
	if df == nil {
		return "", fmt.Errorf("no dataflow %s in the scenario", dataflowID)
	}
	b := df.behaviour
	if d > 0 {
		b.Duration = DurationDist{Min: Duration(d), Max: Duration(d), Dist: "fixed"}
	}
	now := e.Clock.Now()
	return e.startTxn(df, refreshType, false, b, now, now).id, nil
}

// linkJSON is a DatasetToDataflowLinkResponse of the spec. The workspace
// is the dataflow's (which may differ from the dataset's): the spec says
// only "the workspace object ID", and the dataset's workspace is already
// the one in the request's path.
type linkJSON struct {
	DatasetObjectID   string `json:"datasetObjectId"`
	DataflowObjectID  string `json:"dataflowObjectId"`
	WorkspaceObjectID string `json:"workspaceObjectId"`
}

// upstreamDataflows is GET /groups/{groupId}/datasets/upstreamDataflows: one
// link per dataset of the workspace and dataflow it reads.
// https://learn.microsoft.com/rest/api/power-bi/datasets/get-dataset-to-dataflows-links-in-group
func (e *Emulator) upstreamDataflows(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	e.mu.Lock()
	ws, _ := e.workspaceFor(w, r, cl)
	var links []linkJSON
	if ws != nil {
		links = []linkJSON{}
		for _, ds := range ws.datasets {
			for _, id := range ds.ds.UpstreamDataflows {
				if df := e.dataflows[strings.ToLower(id)]; df != nil {
					links = append(links, linkJSON{DatasetObjectID: ds.ds.ID, DataflowObjectID: df.df.ID, WorkspaceObjectID: df.ws.ws.ID})
				}
			}
		}
	}
	e.mu.Unlock()
	if ws != nil {
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": e.base + "/v1.0/myorg/groups/" + ws.ws.ID + "/$metadata#datasetToDataflowLinks", "value": links})
	}
}
