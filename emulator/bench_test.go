package emulator

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchScenario: one Premium workspace with many short-lived datasets, so
// POSTs mostly start refreshes and history and details have content.
func benchScenario(datasets int) *Scenario {
	sc := &Scenario{
		Settings: Settings{TokenLifetime: Duration(24 * time.Hour), RequestLogSize: 20000},
		Tenants:  []Tenant{{ID: tenantID}},
		Apps:     []App{{ClientID: appID, Tenant: tenantID, Secrets: []Secret{{Value: appSecret}}}},
		Workspaces: []Workspace{{ID: salesWS, Name: "Bench",
			Members: []Member{{Principal: appID, Role: "Admin"}}}},
	}
	for i := 0; i < datasets; i++ {
		sc.Workspaces[0].Datasets = append(sc.Workspaces[0].Datasets, Dataset{
			ID: fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", 500000+i), Name: fmt.Sprintf("m%d", i),
			Behaviour: Behaviour{Duration: DurationDist{Min: Duration(time.Millisecond), Max: Duration(5 * time.Millisecond), Dist: "uniform"}},
		})
	}
	return sc
}

// load sends the mixed workload (POST refresh, GET history, GET details,
// in equal parts) from workers goroutines until d has passed; it returns
// the number of requests answered and the non-2xx/4xx count.
func load(client *http.Client, base, tok string, ids []string, workers int, d time.Duration) (int64, int64) {
	var done, bad atomic.Int64
	deadline := time.Now().Add(d)
	var lastID sync.Map
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				ds := ids[(w*7919+i)%len(ids)]
				path := refreshesPath(salesWS, ds)
				var req *http.Request
				switch i % 3 {
				case 0:
					req, _ = http.NewRequest("POST", base+path, strings.NewReader(`{"type":"full"}`))
					req.Header.Set("Content-Type", "application/json")
				case 1:
					req, _ = http.NewRequest("GET", base+path+"?$top=5", nil)
				default:
					id, _ := lastID.Load(ds)
					s, _ := id.(string)
					req, _ = http.NewRequest("GET", base+path+"/"+s, nil)
				}
				req.Header.Set("Authorization", "Bearer "+tok)
				res, err := client.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if id := res.Header.Get("x-ms-request-id"); id != "" {
					lastID.Store(ds, id)
				}
				if res.StatusCode >= 500 {
					bad.Add(1)
				}
				done.Add(1)
			}
		}(w)
	}
	wg.Wait()
	return done.Load(), bad.Load()
}

func heapMB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20)
}

// BenchmarkEmulatorThroughput measures requests per second of the mixed
// Power BI workload against the emulator and, in the same run, against a
// bare TLS server answering a fixed JSON body (the ceiling of this machine's
// HTTP stack), then the heap after one and after five more load periods
// (bounded memory: the history cap and the request log ring). Run with
// -benchtime=1x; the figures are the reported metrics.
func BenchmarkEmulatorThroughput(b *testing.B) {
	const workers, period = 32, 3 * time.Second
	for i := 0; i < b.N; i++ {
		// Baseline: bare TLS server, same client, same concurrency.
		auth, err := newAuthority(nil)
		if err != nil {
			b.Fatal(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		body := []byte(`{"@odata.context":"x","value":[{"requestId":"00000000-0000-4000-8000-000000000000","id":1,"refreshType":"ViaApi","startTime":"2026-01-01T00:00:00.0000000Z","status":"Unknown"}]}`)
		bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{auth.server}}}
		go bare.ServeTLS(ln, "", "")
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: auth.pool}
		tr.ForceAttemptHTTP2 = true
		bareClient := &http.Client{Transport: tr}
		ids := make([]string, 256)
		for j := range ids {
			ids[j] = fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", 500000+j)
		}
		bareN, _ := load(bareClient, "https://"+ln.Addr().String(), "x", ids, workers, period)
		bare.Close()

		e := New(benchScenario(len(ids)))
		if err := e.Start(); err != nil {
			b.Fatal(err)
		}
		client := e.Client()
		h := &harness{emu: e, hc: client}
		tok := h.benchToken(b)
		emuN, bad := load(client, e.URL(), tok, ids, workers, period)
		heap1 := heapMB()
		var more int64
		for k := 0; k < 5; k++ {
			n, _ := load(client, e.URL(), tok, ids, workers, period)
			more += n
		}
		heap5 := heapMB()
		e.mu.Lock()
		stored := len(e.refreshes)
		e.mu.Unlock()
		e.Close()

		emuRate := float64(emuN) / period.Seconds()
		bareRate := float64(bareN) / period.Seconds()
		b.ReportMetric(emuRate, "emulator-req/s")
		b.ReportMetric(bareRate, "bare-tls-req/s")
		b.ReportMetric(emuRate/bareRate, "emulator/bare")
		b.ReportMetric(heap1, "heap-MB-after-1-period")
		b.ReportMetric(heap5, "heap-MB-after-6-periods")
		b.ReportMetric(float64(stored), "refreshes-stored")
		b.Logf("emulator %0.f req/s (%d requests, %d 5xx/transport errors), bare TLS %0.f req/s, ratio %.2f; heap %.1f MB after %d requests, %.1f MB after %d; %d refreshes stored (cap %d)",
			emuRate, emuN, bad, bareRate, emuRate/bareRate, heap1, emuN, heap5, emuN+more, stored, len(ids)*historyCap)
	}
}

func (h *harness) benchToken(b *testing.B) string {
	req, _ := http.NewRequest("POST", h.emu.URL()+"/"+tenantID+"/oauth2/v2.0/token",
		strings.NewReader("grant_type=client_credentials&client_id="+appID+"&client_secret="+appSecret+"&scope="+pbiScope))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := h.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	if err := jsonDecode(res.Body, &m); err != nil || m["access_token"] == nil {
		b.Fatalf("token: %v %v", err, m)
	}
	return m["access_token"].(string)
}
