// Package exitwithparent ends a test server when the process that started it dies.
package exitwithparent

import (
	"os"
	"time"
)

// Watch makes the process exit when the process that started it dies, however it dies
// (even SIGKILL), so a crashed test run leaves no servers behind. Enabled by the test harness
// through RECONTEXT_EXIT_WITH_PARENT=1; `npm run testenv:up` leaves it off on purpose.
func Watch() {
	if os.Getenv("RECONTEXT_EXIT_WITH_PARENT") != "1" {
		return
	}
	parent := os.Getppid()
	go func() {
		for range time.Tick(500 * time.Millisecond) {
			if os.Getppid() != parent {
				os.Exit(3)
			}
		}
	}()
}
