//go:build !linux

package sweep

import "os/exec"

// setParentDeath does nothing where the kernel has no parent-death signal:
// there a killed sweep may leave its current training running.
func setParentDeath(cmd *exec.Cmd) {}
