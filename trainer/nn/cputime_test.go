package nn

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system, all threads, OpenBLAS's included)
// the process has used: on a machine shared with other jobs it measures the
// work, where wall time also measures the others.
func cpuTime() time.Duration {
	var r syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
