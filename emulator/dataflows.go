package emulator

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

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
	start, end  time.Time
	failed      bool
	cancelledAt time.Time
}

// status uses free strings: the spec does not enumerate them, so these
// names are the emulator's choice (contract §11).
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

// dataflowRefresh starts a dataflow refresh: 200 with an empty body, as
// the spec documents (not 202), and no transaction id.
func (e *Emulator) dataflowRefresh(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	var opt string
	if len(strings.TrimSpace(string(c.body))) > 0 {
		var body map[string]any
		if err := jsonUnmarshalStrict(c.body, &body); err != nil {
			pbiError(w, http.StatusBadRequest, "InvalidRequest", "The request body is not a valid JSON object.")
			return
		}
		for k, v := range body {
			s, _ := v.(string)
			if !strings.EqualFold(k, "notifyOption") || (!strings.EqualFold(s, "MailOnFailure") && !strings.EqualFold(s, "NoNotification")) {
				pbiError(w, http.StatusBadRequest, "InvalidRequest", "A dataflow refresh takes only notifyOption: MailOnFailure or NoNotification.")
				return
			}
			opt = s
		}
	}
	_ = opt
	if pt := r.URL.Query().Get("processType"); pt != "" && !strings.EqualFold(pt, "default") && !strings.EqualFold(pt, "processFull") {
		pbiError(w, http.StatusBadRequest, "InvalidRequest", "processType must be default or processFull.")
		return
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
	for _, t := range df.txns {
		if st, _ := t.status(c.now); st == "InProgress" {
			pbiError(w, http.StatusBadRequest, "InvalidRequest", "Invalid dataflow refresh request. Another refresh request is already executing")
			return
		}
	}
	df.seq++
	t := &txn{start: c.now, end: c.now.Add(df.behaviour.Duration.draw(e.rng)), failed: df.behaviour.Outcome == "failed"}
	t.id = fmt.Sprintf("%s@%s$%d", fmtTime(c.now), df.df.ID, df.seq)
	df.txns = append(df.txns, t)
	if len(df.txns) > historyCap {
		df.txns = append(df.txns[:0:0], df.txns[len(df.txns)-historyCap:]...)
	}
	c.entry.RefreshID = t.id
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

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
	list := []map[string]any{}
	for i := len(df.txns) - 1; i >= 0; i-- {
		t := df.txns[i]
		st, end := t.status(c.now)
		m := map[string]any{"id": t.id, "refreshType": "OnDemand", "startTime": fmtTime(t.start), "status": st}
		if !end.IsZero() {
			m["endTime"] = fmtTime(end)
		}
		list = append(list, m)
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": e.odataContext(r, "transactions"), "value": list})
}

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
			if t.id != id {
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
