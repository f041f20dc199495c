package main

// The compression scenario (issue 18): the Laravel example's Blade page with server.compression
// on and off, the load generator asking for br or gzip as browsers do — what compressing costs
// in requests/s, and what it saves in bytes on the wire.

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// benchAcceptEncoding is what wrk sends in the compression scenario: a browser's list.
const benchAcceptEncoding = "gzip, deflate, br"

// The variants of the compression scenario: the same askrd, Laravel worker and load.
const (
	compOn  = "on"
	compOff = "off"
)

// wireSize is one response of a server as it came: its Content-Encoding and body length.
type wireSize struct {
	encoding string
	body     int
}

// compression measures the Laravel example's GET / (a returning visitor's session) with
// compression on and off, in rounds whose order rotates; each variant's row is its median round.
func (b *bench) compression() error {
	if m := b.haveLaravel(); m != "" {
		logf("SKIPPING compression: %s not found", m)
		b.res.compNotes = append(b.res.compNotes, fmt.Sprintf("- **compression**: skipped, %s not found in this checkout.", m))
		return nil
	}
	names := []string{compOn, compOff}
	rounds := map[string][]trial{}
	sizes := map[string]wireSize{}
	for r := 1; r <= b.cfg.compRounds; r++ {
		for i := range names {
			name := names[(i+r-1)%len(names)]
			run, size, err := b.compressionRun(name, r)
			if err != nil {
				return err
			}
			rounds[name] = append(rounds[name], run)
			sizes[name] = size
		}
	}
	b.res.compRows, b.res.compNotes = compSummary(names, rounds, sizes, b.res.compNotes)
	return nil
}

// compressionRun starts askrd with compression on or off, and measures one round.
func (b *bench) compressionRun(name string, round int) (trial, wireSize, error) {
	n := fmt.Sprintf("compression-%s-r%d", name, round)
	conf := filepath.Join(b.tmp, n+".toml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "[server]\ncompression = %t\n", name == compOn), 0o644); err != nil {
		return trial{}, wireSize{}, err
	}
	s, err := b.startAskrd(n, askrdOpts{root: filepath.Join(b.cfg.laravelBase, "public"), script: b.cfg.laravelWkr,
		env: b.laravelEnv(), flags: []string{"--config", conf}})
	if err != nil {
		return trial{}, wireSize{}, err
	}
	defer b.stopAll()
	url, cookie, err := returningVisitor(n, s)
	if err != nil {
		return trial{}, wireSize{}, err
	}
	size, err := wireBytes(url, "Cookie", cookie, "Accept-Encoding", benchAcceptEncoding)
	if err != nil {
		return trial{}, wireSize{}, err
	}
	logf("%s: GET / with Accept-Encoding %q -> Content-Encoding %q, %d bytes of body", n, benchAcceptEncoding, size.encoding, size.body)
	sessions := b.countSessions()
	run, notes, err := b.measure(s, url, b.defaultLoad("-H", "Cookie: "+cookie, "-H", "Accept-Encoding: "+benchAcceptEncoding))
	if err != nil {
		return trial{}, wireSize{}, err
	}
	b.res.compNotes = append(b.res.compNotes, notes...)
	b.res.compNotes = append(b.res.compNotes, b.sessionNotes(s, sessions)...)
	b.res.foreign = append(b.res.foreign, foreign{n + " / askrd", run.Foreign})
	return run, size, nil
}

// rawClient leaves a response's body as it came (Go's transport would ask for gzip and decode it).
var rawClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableCompression: true}}

// wireBytes GETs url with header (name, value pairs) and says how its body came.
func wireBytes(url string, header ...string) (wireSize, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return wireSize{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		return wireSize{}, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return wireSize{}, fmt.Errorf("GET %s: %d, %v", url, resp.StatusCode, err)
	}
	return wireSize{encoding: resp.Header.Get("Content-Encoding"), body: len(body)}, nil
}

// compSummary is the compression table (each variant's median round, the body and the bytes per
// response wrk read, the rps of every round) and a note on what compression costs and saves.
func compSummary(names []string, rounds map[string][]trial, sizes map[string]wireSize, notes []string) (rows, out []string) {
	median, each := medians(names, rounds)
	for _, name := range names {
		mid, ok := median[name]
		if !ok {
			continue
		}
		size := sizes[name]
		rows = append(rows, tableRow(name, fmt0(mid.RPS), fmtMS(mid.P50), fmtMS(mid.P99), mid.errText(),
			cmp.Or(size.encoding, "none"), fmt.Sprint(size.body), perResponse(mid), each[name]))
	}
	on, okOn := median[compOn]
	off, okOff := median[compOff]
	if okOn && okOff {
		out = append(out, fmt.Sprintf("- compression costs %s %% of the requests/s without it; the body is %d bytes instead of %d (%s), and a response %s bytes on the wire instead of %s, headers included",
			costPct(on.RPS, off.RPS), sizes[compOn].body, sizes[compOff].body, cmp.Or(sizes[compOn].encoding, "not compressed"), perResponse(on), perResponse(off)))
	}
	return rows, append(out, notes...)
}

// perResponse is the bytes wrk read per response, headers included.
func perResponse(r trial) string {
	if r.Requests == 0 {
		return "n/a"
	}
	return fmt0(r.Read / float64(r.Requests))
}

func (b *bench) compReport(w *strings.Builder) {
	c, r := b.cfg, &b.res
	if len(r.compRows)+len(r.compNotes) == 0 {
		return
	}
	section(w, "## Compression (askrd only, the Laravel example's Blade page)",
		fmt.Sprintf("GET / of the Laravel example (Blade page, returning visitor's session), `--workers %d`, `wrk -t%d -c%d -d%s -H 'Accept-Encoding: %s'` after a %s warm-up, `[server] compression = true` (the default) vs `false`, %d rounds with the order rotated; each row is that variant's median round. body: one response's body as it came (Content-Encoding as negotiated); per response: the bytes wrk read ÷ its requests, headers and chunked framing included.",
			c.workers, c.threads, c.conns, wrkDur(c.duration), benchAcceptEncoding, wrkDur(c.warmup), c.compRounds),
		"| compression | rps | p50 | p99 | errors | Content-Encoding | body bytes | bytes per response | rps of each round |", "|---|---:|---:|---:|---:|---|---:|---:|---|", r.compRows, r.compNotes)
}
