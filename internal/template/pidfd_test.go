package template

import (
	"os/exec"
	"testing"
	"time"
)

// A handle closed while its process still runs (a discarded spare: Kill, then Close at once) still
// reports the exit, also when the next pidfd opened takes the closed one's number.
func TestPidfdClosedBeforeTheExitStillReportsIt(t *testing.T) {
	start := func() *exec.Cmd {
		t.Helper()
		c := exec.Command("sleep", "60")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	a, b := start(), start()
	for range 20 { // each round gives the poll another chance to be blocked when Close comes
		ha, err := openPidfd(a.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		ha.Close()
		hb, err := openPidfd(b.Process.Pid) // takes ha's number if Close freed it
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ha.Done():
			t.Fatal("Done closed while the process runs")
		default:
		}
		a.Process.Kill()
		select {
		case <-ha.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed within 5s of the kill of a process whose handle was closed")
		}
		hb.Close()
		a.Wait()
		a = start()
	}
}
