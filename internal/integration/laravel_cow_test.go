package integration

// The Laravel example's SQLite database under CoW template mode: the template opens an SQLite
// handle while booting (the example's AppServiceProvider creates its table) and must not hand it
// to the workers it forks (examples/laravel-worker.php disconnects before askr_cow_ready(), and
// again in askr_on_worker_start()): each worker writes through a connection of its own.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLaravelCowSQLite sends concurrent writes to POST /api/visits on four forked workers and
// checks that none failed, none was lost, several processes wrote, and the database is sound.
func TestLaravelCowSQLite(t *testing.T) {
	lvSkipWithoutPHP(t)
	if _, err := exec.LookPath("php"); err != nil {
		t.Skip("php (CLI) not installed: needed for PRAGMA integrity_check")
	}
	s := lvStart(t, "--cow", "--workers", "4")
	db := filepath.Join(s.Base, "storage", "database.sqlite")

	const n, conc = 400, 16
	var mu sync.Mutex
	ids := map[int]bool{}
	pids := map[int]bool{}
	lvConcurrently(t, "POST /api/visits", n, conc, 2*time.Minute, func(ctx context.Context, c *http.Client, i int) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+"/api/visits", nil)
		req.Header.Set("Accept", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("reading the body: %v", err)
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d: %.300s", resp.StatusCode, body)
		}
		var v struct{ ID, Pid, Count int }
		if err := json.Unmarshal(body, &v); err != nil || v.ID <= 0 || v.Pid <= 0 || v.Count <= 0 {
			return fmt.Errorf("unexpected answer (%v): %.300s", err, body)
		}
		mu.Lock()
		defer mu.Unlock()
		if ids[v.ID] {
			return fmt.Errorf("id %d handed out twice", v.ID)
		}
		ids[v.ID] = true
		pids[v.Pid] = true
		return nil
	})

	r := s.send(nil, "GET", "/api/visits", nil)
	lvWant(t, "GET /api/visits: status", r.status, 200)
	var got struct {
		Count int
		Pids  []int
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("GET /api/visits: %v: %.300s", err, r.body)
	}
	lvWant(t, "count", got.Count, n)
	if len(got.Pids) < 2 {
		t.Errorf("pids that wrote = %v, want at least 2 (the responses named %d)", got.Pids, len(pids))
	}
	for pid := range pids {
		if !slices.Contains(got.Pids, pid) {
			t.Errorf("pid %d answered a POST but is not in the table's pids %v", pid, got.Pids)
		}
	}
	t.Logf("%d visits written by pids %v", got.Count, got.Pids)

	// Stop askrd, so every process has closed the database, then check the file.
	s.stop()
	for _, bad := range []string{"database is locked", "malformed", "PHP Fatal", "SQLSTATE"} {
		if strings.Contains(s.logs.String(), bad) {
			t.Errorf("askrd log contains %q", bad)
		}
	}
	out, err := exec.Command("php", "-r",
		`$db = new SQLite3($argv[1], SQLITE3_OPEN_READONLY); echo $db->querySingle("PRAGMA integrity_check"), " ", $db->querySingle("SELECT count(*) FROM visits");`,
		"--", db).CombinedOutput()
	if err != nil {
		t.Fatalf("PRAGMA integrity_check on %s: %v\n%s", db, err, out)
	}
	lvWant(t, "PRAGMA integrity_check, row count", strings.TrimSpace(string(out)), fmt.Sprintf("ok %d", n))
}
