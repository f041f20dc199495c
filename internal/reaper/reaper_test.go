package reaper

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// Sweep ends every descendant, those re-parented to this process (a subreaper) included, and
// leaves the exit status of the children owned claims to whoever waits for them.
func TestSweep(t *testing.T) {
	if err := Become(); err != nil {
		t.Fatalf("Become() = %v", err)
	}
	// A shell that ignores SIGTERM (so do the sleeps it starts: only SIGKILL ends them) with a child
	// of its own, and a sleep left behind by a subshell that has exited: re-parented to this process.
	cmd := exec.Command("sh", "-c", `trap '' TERM; (sleep 300 &); sleep 300 & wait`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	// Settled: the shell and two sleeps, nothing else. Until then the subshell may still run, or a
	// child may not have exec'd sleep yet; a pid taken from that moment would be gone by the sweep.
	settled := func(pids []int) bool {
		if len(pids) != 3 || !slices.Contains(pids, cmd.Process.Pid) {
			return false
		}
		for _, pid := range pids {
			if st, _ := proc.ReadStat(pid); pid != cmd.Process.Pid && st.Comm != "sleep" {
				return false
			}
		}
		return true
	}
	var before []int
	deadline := time.Now().Add(5 * time.Second)
	for !settled(before) && time.Now().Before(deadline) {
		before = proc.Descendants(os.Getpid())
		time.Sleep(5 * time.Millisecond)
	}
	if !settled(before) {
		t.Fatalf("Descendants() = %v; want the shell %d, its sleep and the orphaned sleep", before, cmd.Process.Pid)
	}
	owned := func(pid int) bool { return pid == cmd.Process.Pid }
	swept := Sweep(owned, 200*time.Millisecond)
	for _, pid := range before {
		if !slices.Contains(swept, pid) {
			t.Errorf("Sweep() = %v; want %d among them", swept, pid)
		}
	}
	if left := proc.Descendants(os.Getpid()); len(left) != 0 {
		t.Errorf("after Sweep(), descendants %v still run", left)
	}
	select {
	case err := <-waited:
		if err == nil {
			t.Errorf("the shell exited 0; want killed")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the shell's exit status was not left to its Wait")
	}
}
