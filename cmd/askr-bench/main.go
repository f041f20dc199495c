// Command askr-bench measures askrd against nginx + php-fpm on this machine, with the same number
// of PHP workers, and writes docs/bench.md (`make bench` builds and runs it).
//
//	askr-bench [-workers 2] [-duration 10s] [-conns 32] [-scenarios "hello laravel …"] [-quick] …
//
// Scenarios (-scenarios, default all):
//
//	hello              askrd + examples/hello-worker.php vs nginx + php-fpm running an equivalent
//	                   per-request script, and the askrd of commit -before (built with git and go)
//	laravel            askrd + examples/laravel-worker.php vs nginx + php-fpm running
//	                   examples/laravel/public/index.php (route "/", the Blade page, a returning
//	                   visitor's session), and the route in process (inprocess.php)
//	laravel-json       the same two on GET /api/json (api middleware group, no session), and the
//	                   route in process
//	laravel-workers    askrd only: the example's worker of commit -laravel-before, today's generic
//	                   worker, and the generic one with --paranoid, rounds rotated; goal: the generic
//	                   worker's resets cost under 5 % of requests/s
//	classic-hello      askrd's per-request mode (no worker script) vs nginx + php-fpm routing the
//	                   same way, both running one hello-world index.php afresh per request
//	classic-wordpress  the same two on Debian's WordPress (a private MariaDB, a site config in
//	                   /etc/wordpress removed at the end, installed once through its wizard)
//	classic            both classic-*
//	cow                cow-respawn cow-memory cow-maxreq cow-reload cow-refork: askrd --cow vs
//	                   normal worker mode on the Laravel example: respawn latency after SIGKILL (a
//	                   new fork, the spare's hand-over, a cold boot), PSS of the workers after a
//	                   load, throughput with --max-requests 1; and askrd --cow alone: requests/s,
//	                   p99 and failed requests during `askrd reload` vs steady state, and PSS and
//	                   the Blade page's p50 with [worker] refork_after and without
//	slow-readers       askrd only, worker, CoW and per-request mode: ping latency alone and beside
//	                   clients that hold a 4 MiB answer unread; goal: p99 under 50 ms
//	observe            askrd only, hello world: without an access log, with one (a file), and with
//	                   the admin socket's /metrics scraped every second, rounds rotated; goal: each
//	                   costs under 3 % of requests/s
//	compression        askrd only, the Laravel example's Blade page with server.compression on and
//	                   off, wrk sending Accept-Encoding: gzip, deflate, br; rounds rotated:
//	                   requests/s, and bytes on the wire per response
//
// Every server runs from a private temp dir (internal/harness starts nginx, php-fpm and MariaDB
// the way the integration tests do), listens on 127.0.0.1 only and is stopped at the end; only one
// runs at a time. Load goes to 127.0.0.1 only and every run is bounded in time. -quick (one round,
// 2 s runs, few samples) checks that the scenarios work and writes bench/out/bench-quick.md
// instead of docs/bench.md. The raw wrk output and the servers' logs are kept in bench/out/.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/askr-php/askr/internal/harness"
)

// config is the command line.
type config struct {
	workers, threads, conns int
	duration, warmup        time.Duration
	askrd, wrk, fpmListen   string
	report, scenarios       string
	quick                   bool
	laravelBase, laravelWkr string
	// hello: the askrd to compare with; laravel, laravel-json: the in-process runs
	before        string
	inprocBatches int
	inprocBatch   time.Duration
	// classic-*
	classicRounds, classicRetries, wpConns int
	wpTimeout                              time.Duration
	// laravel-workers
	laravelBefore string
	lwRounds      int
	// cow
	respawnN, memWorkers, memRequests, memConns int
	memMax, maxreqDuration                      time.Duration
	maxreqWorkers, maxreqThreads, maxreqConns   int
	slowWorkers, slowReaders, slowPings         int
	// observe
	obsRounds int
	// compression
	compRounds int
	// cow-reload, cow-refork
	reloadWorkers, reloadConns, reloadN       int
	reloadSteady, reloadSettle, reloadMax     time.Duration
	reforkAfter, reforkRequests, reforkRounds int
}

func parseFlags(repo string, args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("askr-bench", flag.ContinueOnError)
	fs.IntVar(&c.workers, "workers", 2, "PHP workers of askrd and php-fpm (pm.max_children)")
	fs.IntVar(&c.threads, "threads", 2, "wrk threads")
	fs.IntVar(&c.conns, "conns", 32, "wrk connections")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of a measured run")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "length of the warm-up before each run")
	fs.StringVar(&c.askrd, "askrd", filepath.Join(repo, "bin", "askrd"), "the askrd to measure")
	fs.StringVar(&c.wrk, "wrk", "wrk", "the load generator")
	fs.StringVar(&c.fpmListen, "fpm-listen", "unix", "how nginx reaches php-fpm: unix (a socket, as Debian's pool) or tcp")
	fs.StringVar(&c.report, "report", "", "the report to write (default docs/bench.md; with -quick bench/out/bench-quick.md)")
	fs.StringVar(&c.scenarios, "scenarios", "hello laravel laravel-json laravel-workers classic-hello classic-wordpress cow slow-readers observe compression", "scenarios to run, in order")
	fs.BoolVar(&c.quick, "quick", false, "a check, not a measurement: one round, 2 s runs, few samples")
	fs.StringVar(&c.before, "before", "b91dc02", "hello: the commit whose askrd is measured too (main before issue 19)")
	fs.IntVar(&c.inprocBatches, "inproc-batches", 5, "laravel, laravel-json: timed batches of the route in process")
	fs.DurationVar(&c.inprocBatch, "inproc-batch", time.Second, "laravel, laravel-json: length of one such batch (and of the warm-up)")
	fs.IntVar(&c.classicRounds, "classic-rounds", 3, "classic-*: rounds per server, alternating")
	fs.IntVar(&c.classicRetries, "classic-retries", 2, "classic-*: repeats of a run disturbed by other processes")
	fs.IntVar(&c.wpConns, "wp-conns", 8, "classic-wordpress: wrk connections")
	fs.DurationVar(&c.wpTimeout, "wp-timeout", 10*time.Second, "classic-wordpress: wrk's timeout")
	fs.StringVar(&c.laravelBefore, "laravel-before", "5630246", "laravel-workers: the commit of the example's earlier worker")
	fs.IntVar(&c.lwRounds, "lw-rounds", 3, "laravel-workers: rounds")
	fs.IntVar(&c.respawnN, "respawn-n", 30, "cow-respawn: kills per mode")
	fs.IntVar(&c.memWorkers, "mem-workers", 8, "cow-memory: workers")
	fs.IntVar(&c.memRequests, "mem-requests", 1000, "cow-memory: requests per worker before memory is read")
	fs.IntVar(&c.memConns, "mem-conns", 16, "cow-memory: connections of that load")
	fs.DurationVar(&c.memMax, "mem-max", 60*time.Second, "cow-memory: bound on that load")
	fs.IntVar(&c.maxreqWorkers, "maxreq-workers", 0, "cow-maxreq: workers (default -workers)")
	fs.IntVar(&c.maxreqThreads, "maxreq-threads", 2, "cow-maxreq: wrk threads")
	fs.IntVar(&c.maxreqConns, "maxreq-conns", 8, "cow-maxreq: wrk connections")
	fs.DurationVar(&c.maxreqDuration, "maxreq-duration", 10*time.Second, "cow-maxreq: length of the run")
	fs.IntVar(&c.slowWorkers, "slow-workers", 4, "slow-readers: workers")
	fs.IntVar(&c.slowReaders, "slow-readers", 8, "slow-readers: clients holding a large answer")
	fs.IntVar(&c.slowPings, "slow-pings", 200, "slow-readers: pings per set")
	fs.IntVar(&c.obsRounds, "obs-rounds", 3, "observe: rounds")
	fs.IntVar(&c.compRounds, "comp-rounds", 3, "compression: rounds")
	fs.IntVar(&c.reloadWorkers, "reload-workers", 4, "cow-reload: workers")
	fs.IntVar(&c.reloadConns, "reload-conns", 8, "cow-reload: connections of the load")
	fs.IntVar(&c.reloadN, "reload-n", 3, "cow-reload: reloads")
	fs.DurationVar(&c.reloadSteady, "reload-steady", 10*time.Second, "cow-reload: steady state measured before the first reload")
	fs.DurationVar(&c.reloadSettle, "reload-settle", 2*time.Second, "cow-reload: load after each reload")
	fs.DurationVar(&c.reloadMax, "reload-max", 60*time.Second, "cow-reload: bound on one reload")
	fs.IntVar(&c.reforkAfter, "refork-after", 100, "cow-refork: refork_after = [N]")
	fs.IntVar(&c.reforkRequests, "refork-requests", 5000, "cow-refork: requests before memory is read (all workers together)")
	fs.IntVar(&c.reforkRounds, "refork-rounds", 3, "cow-refork: rounds (with and without refork in each, the order alternating)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.quick {
		quickDefaults(fs, repo)
	}
	if c.report == "" {
		c.report = filepath.Join(repo, "docs", "bench.md")
	}
	if c.maxreqWorkers == 0 {
		c.maxreqWorkers = c.workers
	}
	c.laravelBase = filepath.Join(repo, "examples", "laravel")
	c.laravelWkr = filepath.Join(repo, "examples", "laravel-worker.php")
	return c, c.check()
}

// quickDefaults sets -quick's shorter defaults; flags given explicitly stay.
func quickDefaults(fs *flag.FlagSet, repo string) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	quick := map[string]string{"duration": "2s", "warmup": "1s", "maxreq-duration": "2s", "classic-rounds": "1",
		"classic-retries": "0", "lw-rounds": "1", "obs-rounds": "1", "comp-rounds": "1", "inproc-batches": "3", "inproc-batch": "500ms", "respawn-n": "5", "mem-requests": "100", "slow-pings": "50",
		"reload-steady": "2s", "reload-n": "1", "reload-settle": "1s", "refork-requests": "2000", "refork-rounds": "1",
		"report": filepath.Join(repo, "bench", "out", "bench-quick.md")}
	for name, v := range quick {
		if !set[name] {
			fs.Set(name, v)
		}
	}
}

// check refuses settings that cannot be measured.
func (c config) check() error {
	switch {
	case c.workers < 1:
		return fmt.Errorf("-workers must be a positive number, got %d", c.workers)
	case c.fpmListen != "unix" && c.fpmListen != "tcp":
		return fmt.Errorf("-fpm-listen must be unix or tcp, got %q", c.fpmListen)
	case c.compRounds < 1:
		return fmt.Errorf("-comp-rounds must be a positive number, got %d", c.compRounds)
	case c.inprocBatches < 1 || c.inprocBatch < time.Millisecond:
		return fmt.Errorf("-inproc-batches must be a positive number and -inproc-batch at least 1ms")
	case c.reloadN < 1 || c.reloadWorkers < 1 || c.reloadConns < 1 || c.reforkAfter < 1 || c.reforkRequests < 1 || c.reforkRounds < 1:
		return fmt.Errorf("-reload-n, -reload-workers, -reload-conns, -refork-after, -refork-requests and -refork-rounds must be positive numbers")
	}
	return nil
}

// bench is one run of the program: its settings, the servers running now, and the results.
type bench struct {
	cfg      config
	repo     string
	tmp, out string
	res      results

	// What was started or written and must be undone, also by the signal handler.
	mu       sync.Mutex
	running  []*server
	helpers  []*harness.Proc // outlive one server (classic-wordpress's mariadbd); their CPU is counted with the servers'
	cleanups []func()
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "askr-bench: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	repo, err := repoRoot()
	if err != nil {
		return err
	}
	cfg, err := parseFlags(repo, os.Args[1:])
	if err != nil {
		return err
	}
	for _, tool := range []string{cfg.wrk, harness.NginxPath, harness.PHPFPMPath, "php-cgi"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (make deps-bench installs nginx-light php8.2-fpm wrk)", tool)
		}
	}
	if _, err := os.Stat(cfg.askrd); err != nil {
		return fmt.Errorf("%s not found; run: make build", cfg.askrd)
	}
	b := &bench{cfg: cfg, repo: repo, out: filepath.Join(repo, "bench", "out")}
	b.res.ran = map[string]row{}
	if b.tmp, err = os.MkdirTemp("", "askr-bench."); err != nil {
		return err
	}
	os.RemoveAll(b.out)
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		return err
	}
	defer b.cleanup()
	// SIGINT/SIGTERM: stop the servers and remove what we wrote outside the temp dir, then exit.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		logf("%v: stopping", s)
		b.cleanup()
		b.mu.Lock() // held until exit: nothing more starts
		os.Exit(128 + int(s.(syscall.Signal)))
	}()

	idle := idlePct()
	if idle < 90 {
		logf("WARNING: the CPUs were only %d%% idle before the run: expect noisy numbers", idle)
	}
	for _, s := range strings.Fields(cfg.scenarios) {
		if err := b.scenario(s); err != nil {
			return err
		}
	}
	text := b.report(idle, time.Now().UTC(), readSysInfo(cfg))
	if err := os.MkdirAll(filepath.Dir(cfg.report), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(cfg.report, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Println()
	fmt.Print(text)
	fmt.Println()
	rel, _ := filepath.Rel(repo, cfg.report)
	logf("report written to %s; raw wrk output and server logs in bench/out/", rel)
	return nil
}

// scenario runs one scenario by name.
func (b *bench) scenario(name string) error {
	all := map[string][]func() error{
		"hello":             {b.hello},
		"laravel":           {b.laravel},
		"laravel-json":      {b.laravelJSON},
		"laravel-workers":   {b.laravelWorkers},
		"classic-hello":     {b.classicHello},
		"classic-wordpress": {b.classicWordPress},
		"classic":           {b.classicHello, b.classicWordPress},
		"cow":               {b.cowRespawn, b.cowMemory, b.cowMaxReq, b.cowReload, b.cowRefork},
		"cow-respawn":       {b.cowRespawn},
		"cow-memory":        {b.cowMemory},
		"cow-maxreq":        {b.cowMaxReq},
		"cow-reload":        {b.cowReload},
		"cow-refork":        {b.cowRefork},
		"slow-readers":      {b.slowReadersScenario},
		"observe":           {b.observe},
		"compression":       {b.compression},
	}
	fns, ok := all[name]
	if !ok {
		return fmt.Errorf("unknown scenario %q (hello laravel laravel-json laravel-workers classic cow slow-readers observe compression, or classic-hello classic-wordpress cow-respawn cow-memory cow-maxreq cow-reload cow-refork)", name)
	}
	for _, fn := range fns {
		err := fn()
		b.stopAll()
		if err != nil {
			return err
		}
	}
	return nil
}

// cleanup stops every process started, runs the scenarios' cleanups (the WordPress site config),
// keeps the logs in bench/out and removes the temp dir. It may run twice (a signal during it).
func (b *bench) cleanup() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopRunning()
	for _, p := range b.helpers {
		p.Stop(10 * time.Second)
	}
	b.helpers = nil
	for _, f := range b.cleanups {
		f()
	}
	b.cleanups = nil
	if b.tmp != "" {
		b.keepLogs()
		os.RemoveAll(b.tmp)
		b.tmp = ""
	}
}

func (b *bench) helperPids() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return pids(b.helpers)
}

// repoRoot is the checkout's top directory: the working directory or one above it with a go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no go.mod in %s or above: run askr-bench in the askr checkout", dir)
		}
	}
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, ">> "+format+"\n", a...) }

// execCommandContext is exec.CommandContext that interrupts (SIGINT, as a person would; wrk then
// prints what it has) when ctx ends, and kills 10 s later.
func execCommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}
