package s3test

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill the server when the thread that
// started it exits, so that a test binary that dies never leaves it behind.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
