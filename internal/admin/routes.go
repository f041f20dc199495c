package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/askr-php/askr/internal/pool"
)

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { text(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.status(r.URL.Query().Has("full")))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.opt.Metrics == nil {
			http.Error(w, "no metrics in this askrd", http.StatusNotFound)
			return
		}
		s.opt.Metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /history", s.history)
	mux.HandleFunc("POST /reload", s.reload)
	mux.HandleFunc("POST /workers/{pid}/recycle", s.recycle)
	mux.HandleFunc("GET /{$}", s.dashboard)
	// The original askr's paths.
	mux.HandleFunc("GET /api/status", s.apiStatus)
	mux.HandleFunc("POST /api/reload", s.apiReload)
	return mux
}

// readyz is 200 while a request would be served or queued: a worker is idle, or the queue is
// below its bound (with at least one worker up); 503 otherwise.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	st := s.src.Stats()
	idle := st.Ready - st.Busy
	switch {
	case st.Ready > 0 && idle > 0:
		text(w, http.StatusOK, "ready: "+strconv.Itoa(idle)+" idle workers")
	case st.Ready > 0 && st.Waiting < st.QueueSize:
		text(w, http.StatusOK, "ready: every worker busy, "+strconv.Itoa(st.Waiting)+" of "+strconv.Itoa(st.QueueSize)+" queued")
	case st.Ready == 0:
		text(w, http.StatusServiceUnavailable, "not ready: no worker is up")
	default:
		text(w, http.StatusServiceUnavailable, "not ready: every worker busy and the queue full ("+strconv.Itoa(st.Waiting)+" queued)")
	}
}

// emptyHistory is /history without a History function.
var emptyHistory = map[string]any{"interval_seconds": 1, "points": []any{}, "exits": []any{}}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	if s.opt.History == nil {
		writeJSON(w, http.StatusOK, emptyHistory)
		return
	}
	writeJSON(w, http.StatusOK, s.opt.History())
}

// result is the answer of POST /reload and POST /workers/{pid}/recycle.
type result struct {
	OK         bool     `json:"ok"`
	Action     string   `json:"action"`
	PID        int      `json:"pid,omitempty"`
	Generation int64    `json:"generation,omitempty"`
	Rollout    *Rollout `json:"rollout,omitempty"` // a reload's: the canary's verdict
	Error      string   `json:"error,omitempty"`
}

// doReload runs the reload (in CoW mode: a new template) and says how it went once the canary
// has been judged: 200, or 500 if it failed.
func (s *Server) doReload() (int, result) {
	err := s.src.Reload() // the Source logs it
	st := s.src.Stats()
	ro := rollout(st.Rollout)
	if err != nil {
		return http.StatusInternalServerError, result{Action: "reload", Error: err.Error(), Rollout: &ro}
	}
	return http.StatusOK, result{OK: true, Action: "reload", Generation: st.Generation, Rollout: &ro}
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	code, res := s.doReload()
	writeJSON(w, code, res)
}

// recycleTimeout bounds the wait for the pool's owner loop in POST /workers/{pid}/recycle.
const recycleTimeout = 5 * time.Second

func (s *Server) recycle(w http.ResponseWriter, r *http.Request) {
	pid, err := strconv.Atoi(r.PathValue("pid"))
	if err != nil || pid <= 0 {
		writeJSON(w, http.StatusBadRequest, result{Action: "recycle", Error: strconv.Quote(r.PathValue("pid")) + " is not a process id"})
		return
	}
	done := make(chan error, 1)
	go func() { done <- s.src.Recycle(pid) }()
	select {
	case err = <-done:
	case <-time.After(recycleTimeout):
		err = errors.New("the pool did not answer in time; the worker may still be recycled")
	}
	switch {
	case errors.Is(err, pool.ErrNoSuchWorker):
		writeJSON(w, http.StatusNotFound, result{Action: "recycle", PID: pid, Error: "no worker has pid " + strconv.Itoa(pid)})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, result{Action: "recycle", PID: pid, Error: err.Error()})
	default:
		s.log.Info("recycling a worker, asked through the admin API", "pid", pid)
		writeJSON(w, http.StatusOK, result{OK: true, Action: "recycle", PID: pid})
	}
}

// apiStatus is the original askr's GET /api/status.
func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	st := s.status(true)
	type kb struct {
		PID   int   `json:"pid"`
		RSSKB int64 `json:"rss_kb"`
	}
	respawns := uint64(0)
	for _, n := range st.Exits {
		respawns += n
	}
	workers, pids := []kb{}, []int{}
	for _, w := range st.Workers.List {
		workers = append(workers, kb{w.PID, w.RSS >> 10})
		pids = append(pids, w.PID)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"version": st.Version, "listen": s.opt.Listen, "mode": st.Mode, "uptime_secs": int64(st.UptimeSeconds),
		"workers_configured": s.opt.Configured, "workers_alive": st.Workers.Total, "respawns": respawns,
		"rss_kb_total": st.Memory.RSS >> 10, "workers": workers, "pids": pids,
	})
}

// apiReload is the original askr's POST /api/reload; it answers once the reload has its result.
func (s *Server) apiReload(w http.ResponseWriter, r *http.Request) {
	code, res := s.doReload()
	writeJSON(w, code, res)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func text(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write([]byte(strings.TrimSuffix(s, "\n") + "\n"))
}
