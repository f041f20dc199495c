package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/askr-php/askr/internal/admin"
	"github.com/askr-php/askr/internal/certificate"
	"github.com/askr-php/askr/internal/sidecar"
)

// printStatus writes the status as a person reads it: one line per worker, then a summary.
func printStatus(w io.Writer, st admin.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tSTATE\tREQUESTS\tCURRENT\tFOR\tPSS\tPRIVATE\tCPU\tGEN")
	for _, wk := range st.Workers.List {
		cur, age := "-", "-"
		if c := wk.Current; c != nil {
			cur, age = clip(c.Method+" "+c.URI, 48), fmt.Sprintf("%.1fs", c.Seconds)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%.1fs\t%d\n", wk.PID, wk.State, wk.Requests, cur, age,
			size(wk.PSS), size(wk.Private), wk.CPUSeconds, wk.Generation)
	}
	tw.Flush()
	m := st.Memory
	parts := []string{
		st.Mode + " mode", "generation " + fmt.Sprint(st.Generation), "up " + uptime(st.UptimeSeconds),
		workersPart(st.Workers),
		fmt.Sprintf("queue %d/%d (most %d)", st.Queue.Length, st.Queue.Bound, st.Queue.HighWater),
		fmt.Sprintf("served %d", st.Served),
		// PSS = what is private + the workers' share of what they share: next to RSS (shared
		// pages counted once per worker), it shows what CoW saves.
		fmt.Sprintf("memory: PSS %s = private %s + shared %s (RSS %s)", size(m.PSS), size(m.Private), size(max(m.PSS-m.Private, 0)), size(m.RSS)),
	}
	if st.TemplatePID > 0 {
		t := fmt.Sprintf("template %d", st.TemplatePID)
		if st.TemplateMemory != nil {
			t += " PSS " + size(st.TemplateMemory.PSS)
		}
		parts = append(parts, t)
	}
	if st.Partial {
		parts = append(parts, "(the pool is busy: workers as last known)")
	}
	fmt.Fprintln(w, strings.Join(parts, " · "))
	if r := st.Rollout; r.State != "" && r.State != "idle" {
		line := fmt.Sprintf("last %s: %s, generation %d → %d", r.Cause, r.State, r.From, r.To)
		if r.Canary > 0 {
			line += fmt.Sprintf(", canary %d", r.Canary)
		}
		if r.Detail != "" {
			line += ": " + clip(r.Detail, 300)
		}
		fmt.Fprintln(w, line)
	}
	printSidecars(w, st.Sidecars, time.Now())
	printCertificates(w, st.Certificates, time.Now())
}

// printCertificates writes one line per certificate of HTTPS: where it comes from, its names, when
// it expires, and the last error obtaining or reading it.
func printCertificates(w io.Writer, list []certificate.Status, now time.Time) {
	if len(list) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE	SOURCE	EXPIRES	ISSUER	ERROR")
	for _, c := range list {
		expires := "-"
		if !c.NotAfter.IsZero() {
			left := c.NotAfter.Sub(now)
			in := uptime(left.Seconds())
			if left > 48*time.Hour {
				in = fmt.Sprintf("%d days", int(left.Hours()/24))
			}
			expires = c.NotAfter.UTC().Format(time.DateOnly) + " (in " + in + ")"
			if c.NotAfter.Before(now) {
				expires = c.NotAfter.UTC().Format(time.DateOnly) + " (expired)"
			}
		}
		issuer, errText := "-", "-"
		if c.Issuer != "" {
			issuer = clip(c.Issuer, 40)
		}
		if c.Error != "" {
			errText = clip(c.Error, 80)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", clip(strings.Join(c.Names, ","), 48), c.Source, expires, issuer, errText)
	}
	tw.Flush()
}

// printSidecars writes one line per sidecar, queue worker and scheduler: what runs, since when,
// its restarts and how the last one ended.
func printSidecars(w io.Writer, list []sidecar.Status, now time.Time) {
	if len(list) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SIDECAR	KIND	PID	STATE	UP	RESTARTS	LAST EXIT")
	for _, sc := range list {
		pid, up := "-", "-"
		if sc.PID > 0 {
			pid = fmt.Sprint(sc.PID)
			if !sc.Started.IsZero() {
				up = uptime(now.Sub(sc.Started).Seconds())
			}
		}
		name := sc.Name
		if sc.Index > 0 || sc.Kind == sidecar.KindQueue {
			name = fmt.Sprintf("%s#%d", sc.Name, sc.Index+1)
		}
		last := "-"
		if sc.LastExit != "" {
			last = clip(sc.LastExit, 60) + " " + uptime(now.Sub(sc.ExitedAt).Seconds()) + " ago"
		}
		if sc.Skipped > 0 {
			last += fmt.Sprintf(" (%d runs skipped: the previous still ran)", sc.Skipped)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", clip(name, 32), sc.Kind, pid, sc.State, up, sc.Restarts, last)
	}
	tw.Flush()
}

// workersPart is the summary's count of workers, with the pool's target when it differs (it scales,
// or workers are still booting).
func workersPart(w admin.Workers) string {
	s := fmt.Sprintf("%d workers (%d busy, %d idle)", w.Total, w.Busy, w.Idle)
	if w.Target > 0 && w.Target != w.Total {
		s += fmt.Sprintf(", target %d", w.Target)
	}
	return s
}

// clip is s cut to n characters, with what a terminal would act on (control characters, C1's CSI
// included: a URI is the client's) shown as "?".
func clip(s string, n int) string {
	r := []rune(strings.Map(func(c rune) rune {
		if !unicode.IsGraphic(c) {
			return '?'
		}
		return c
	}, s))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n-1]) + "…"
}

// size is n bytes in MiB.
func size(n int64) string { return fmt.Sprintf("%.1fM", float64(n)/(1<<20)) }

func uptime(s float64) string {
	d := time.Duration(s) * time.Second
	if d < time.Minute {
		return d.String()
	}
	return strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s")
}

// runDashboard is `askrd dashboard`: it serves the dashboard and the API on a loopback address,
// forwarding to the admin socket, and prints the URL (with a token in its fragment, so that other
// users of the machine, who may connect to loopback too, cannot use the API) until interrupted.
func runDashboard(args []string, stdout, stderr io.Writer) int {
	c := newCtl("dashboard", stderr)
	listen := c.fs.String("listen", "127.0.0.1:0", "the loopback address to serve the dashboard on")
	if err := c.fs.Parse(args); err != nil || c.fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: askrd dashboard [--config FILE] [--socket PATH] [--listen 127.0.0.1:0]")
		return ExitUsage
	}
	host, _, err := net.SplitHostPort(*listen)
	if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		fmt.Fprintf(stderr, "askrd dashboard: --listen %q is not a loopback address: the dashboard serves the admin API\n", *listen)
		return ExitUsage
	}
	path, err := c.socketPath()
	if err != nil {
		return c.fail(err)
	}
	if _, _, err := c.do(path, http.MethodGet, "/healthz", 5*time.Second); err != nil {
		return c.fail(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return c.fail(err)
	}
	b := make([]byte, 16)
	rand.Read(b)
	token := hex.EncodeToString(b)
	srv := &http.Server{Handler: admin.Proxy(path, token), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "askrd dashboard: http://%s/#token=%s (Ctrl-C ends it)\n", ln.Addr(), token)
	select {
	case err := <-served:
		return c.fail(err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return c.fail(err)
	}
	return ExitOK
}
