package integration

// Memory recycling (max_rss, max_private_memory): a worker over the limit answers its request and
// is replaced between requests; memory a CoW worker shares with its template does not count
// against max_private_memory.

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// memAnswer is what testdata/memory.php answers: the worker's pid, the 5 MB blocks it holds, the
// size of what it built at boot.
type memAnswer struct{ pid, blocks, big int }

func getMem(t *testing.T, s *server, path string) memAnswer {
	t.Helper()
	r := s.get(path)
	f := strings.Fields(r.body)
	if r.status != 200 || len(f) != 3 {
		t.Fatalf("GET %s = %d %q; want 200 \"PID BLOCKS BIG\"", path, r.status, r.body)
	}
	var a memAnswer
	for i, p := range []*int{&a.pid, &a.blocks, &a.big} {
		n, err := strconv.Atoi(f[i])
		if err != nil {
			t.Fatalf("GET %s = %q: %v", path, r.body, err)
		}
		*p = n
	}
	return a
}

// recycledFor returns the pids the log says were over a limit (key: "max_rss" or
// "max_private_memory"), from INFO lines that carry the figure and the limit.
func recycledFor(t *testing.T, s *server, key string) map[int]bool {
	t.Helper()
	re := regexp.MustCompile(`level=INFO msg="worker over ` + key + `; replacing it after (?:this|its current) request" component=pool pid=(\d+) \S+=[\d.]+MiB ` + key + `=[\d.]+MiB`)
	pids := map[int]bool{}
	for _, m := range re.FindAllStringSubmatch(s.logs.String(), -1) {
		pid, _ := strconv.Atoi(m[1])
		if pids[pid] {
			t.Errorf("worker %d named over %s twice; want one line", pid, key)
		}
		pids[pid] = true
	}
	return pids
}

func memoryScript(t *testing.T) string {
	return filepath.Join(repoRoot(t), "internal", "integration", "testdata", "memory.php")
}

// A route that leaks 5 MB a request under max_rss: every request is answered (200), the workers
// are replaced between requests once over 60 MB, each one the log names as over max_rss.
func TestMaxRSSRecyclesALeakingWorker(t *testing.T) {
	s := startAskrd(t, opts{script: memoryScript(t), args: []string{"--workers", "2"}, config: "[server]\nmax_rss = 60\n"})
	served := map[int]bool{}
	for i := range 40 {
		a := getMem(t, s, "/grow")
		// A worker holds at most 60 MB / 5 MB + 1 blocks: it is retired after the request that
		// took it over the limit.
		if a.blocks > 13 {
			t.Errorf("request %d: worker %d holds %d blocks of 5 MB; want it replaced past 60 MB", i, a.pid, a.blocks)
		}
		served[a.pid] = true
	}
	over := recycledFor(t, s, "max_rss")
	if len(served) < 4 || len(over) < 2 {
		t.Fatalf("40 leaking requests served by %d workers, %d named over max_rss; want the workers replaced", len(served), len(over))
	}
	// Every worker that served is named over max_rss, but the two that serve on.
	if len(served)-len(over) > 2 {
		t.Errorf("%d workers served, %d named over max_rss; want all but the 2 still serving", len(served), len(over))
	}
	for pid := range over {
		if !served[pid] {
			t.Errorf("log names worker %d over max_rss; it served none of the requests", pid)
		}
	}
	logs := s.logs.String()
	if cowMode() {
		// In CoW mode askrd warns once at start that max_rss counts shared pages: that is all.
		const cowWarning = `level=WARN msg="max_rss counts the pages a CoW worker shares`
		if strings.Count(logs, cowWarning) != 1 {
			t.Errorf("CoW mode with max_rss: want askrd's warning about shared pages once:\n%s", logs)
		}
		logs = strings.Replace(logs, cowWarning, "", 1)
	}
	if strings.Contains(logs, "level=WARN") || strings.Contains(logs, "level=ERROR") {
		t.Errorf("warnings or errors while recycling by memory:\n%s", s.logs.String())
	}
}

// Per-request mode: php-cgi frees what a request allocated when it ends (each request starts
// afresh), so a script that allocates 5 MB a request does not take the process over max_rss; a
// limit below what php-cgi needs at all recycles the process after every request.
func TestMaxRSSPerRequest(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "grow.php"), []byte(`<?php $a = str_repeat('x', 5 << 20); echo getmypid(), ' ', strlen($a);`), 0o644); err != nil {
		t.Fatal(err)
	}
	pidOfGrow := func(s *server) int {
		t.Helper()
		r := s.get("/grow.php")
		pid, err := strconv.Atoi(strings.Fields(r.body + " x")[0])
		if r.status != 200 || err != nil {
			t.Fatalf("GET /grow.php = %d %q; want 200 with the pid", r.status, r.body)
		}
		return pid
	}
	s := startAskrd(t, opts{perRequest: true, root: root, args: []string{"--workers", "1"}, config: "[server]\nmax_rss = 100\n"})
	first := pidOfGrow(s)
	for i := range 20 {
		if pid := pidOfGrow(s); pid != first {
			t.Fatalf("request %d served by php-cgi %d, not %d; want it kept (its memory is freed per request)", i, pid, first)
		}
	}
	if n := len(recycledFor(t, s, "max_rss")); n != 0 {
		t.Errorf("%d php-cgi processes over max_rss = 100 MB; want none", n)
	}
	s.stop()

	s = startAskrd(t, opts{perRequest: true, root: root, args: []string{"--workers", "1"}, config: "[server]\nmax_rss = 1\n"})
	seen := map[int]bool{}
	for range 5 {
		seen[pidOfGrow(s)] = true
	}
	if len(seen) != 5 || len(recycledFor(t, s, "max_rss")) < 4 {
		t.Errorf("5 requests with max_rss = 1 MB served by %d php-cgi processes, %d named over; want a new one each time", len(seen), len(recycledFor(t, s, "max_rss")))
	}
}

// A CoW template that holds 200 MB: its workers share it. max_private_memory = 64M leaves them
// serving (their own memory is small) and still catches one that leaks; max_rss below the shared
// size recycles every worker after every request, for nothing.
func TestCowSharedMemoryIsNotPrivate(t *testing.T) {
	o := opts{script: memoryScript(t), env: []string{"ASKR_TEST_BIG=1"}, args: []string{"--workers", "2"},
		config: "[server]\nmax_private_memory = \"64M\"\n"}
	s := startCow(t, o)
	workers := map[int]bool{}
	for i := range 30 {
		a := getMem(t, s, "/")
		if a.big != 200<<20 {
			t.Fatalf("request %d: the template's string has %d bytes; want 200 MB", i, a.big)
		}
		workers[a.pid] = true
	}
	if len(workers) > 2 || len(recycledFor(t, s, "max_private_memory")) != 0 {
		t.Errorf("30 requests served by %d workers (%d named over max_private_memory); want the 2 first, none recycled", len(workers), len(recycledFor(t, s, "max_private_memory")))
	}
	// The limit applies: a worker that leaks is replaced once its own memory passes 64 MB.
	for i := 0; len(recycledFor(t, s, "max_private_memory")) == 0; i++ {
		if i == 40 {
			t.Fatalf("40 requests leaking 5 MB each; no worker named over max_private_memory")
		}
		if a := getMem(t, s, "/grow"); a.blocks > 16 {
			t.Errorf("worker %d holds %d blocks of 5 MB; want it replaced past 64 MB of its own", a.pid, a.blocks)
		}
	}
	s.stop()

	o.config = "[server]\nmax_rss = 150\n"
	s = startCow(t, o)
	seen := map[int]bool{}
	for range 6 {
		seen[getMem(t, s, "/").pid] = true
	}
	if len(seen) != 6 || len(recycledFor(t, s, "max_rss")) < 5 {
		t.Errorf("6 requests with max_rss = 150 MB below the 200 MB shared: %d workers, %d named over max_rss; want a new worker for every request",
			len(seen), len(recycledFor(t, s, "max_rss")))
	}
}
