package sweep

import (
	"os/exec"
	"syscall"
)

// setParentDeath makes the kernel SIGKILL the command when the thread that
// started it exits: a sweep killed with SIGKILL leaves no training behind
// (Command.Run keeps that thread locked until the command ends).
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
