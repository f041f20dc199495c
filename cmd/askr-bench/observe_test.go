package main

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The scraper GETs /metrics over the Unix socket; a socket that is not there is reported, not
// hidden.
func TestScraper(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("askr_requests_total 1\n"))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	r := startScraper(sock, 10*time.Millisecond).stop() // it scrapes once before it returns
	if r.ok < 1 || r.failed != 0 || r.bytes != int64(r.ok)*int64(len("askr_requests_total 1\n")) {
		t.Errorf("scrapes of a working endpoint: %+v; want some answered, none failed", r)
	}
	r = startScraper(filepath.Join(t.TempDir(), "none.sock"), 10*time.Millisecond).stop()
	if r.ok != 0 || r.failed < 1 || !strings.Contains(r.String(), "did not answer") {
		t.Errorf("scrapes of a missing socket: %+v (%s); want failures, said so", r, r)
	}
}

func TestObsSummary(t *testing.T) {
	run := func(rps float64) trial { return trial{wrkResult: wrkResult{RPS: rps, P50: 1, P99: 2}} }
	rounds := map[string][]trial{obsOff: {run(1000), run(1100), run(900)}, obsLog: {run(980)}, obsScrape: {run(900)}}
	rows, notes := obsSummary([]string{obsOff, obsLog, obsScrape}, rounds, nil, nil)
	if len(rows) != 3 || !strings.Contains(rows[0], "| off | 1000 |") || !strings.Contains(rows[0], "1000 1100 900") {
		t.Errorf("rows = %q; want off's median 1000 and every round", rows)
	}
	if len(notes) != 2 || !strings.Contains(notes[0], "access log costs 2.0 %") || !strings.HasSuffix(notes[0], ": met") ||
		!strings.Contains(notes[1], "costs 10.0 %") || !strings.HasSuffix(notes[1], "**not met**") {
		t.Errorf("notes = %q; want the access log at 2.0 %% (met), the scrape at 10.0 %% (not met)", notes)
	}
	_, notes = obsSummary([]string{obsOff, obsLog, obsScrape}, rounds, map[string]bool{obsScrape: true}, nil)
	if !strings.Contains(notes[1], "**not measured**") {
		t.Errorf("note of a scrape that got no answer = %q; want not measured", notes[1])
	}
}
