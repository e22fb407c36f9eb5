//go:build !linux

package s3test

import "os/exec"

// setParentDeathSignal does nothing where the kernel has no parent-death
// signal: there a package without s3test.Main leaves its server running.
func setParentDeathSignal(cmd *exec.Cmd) {}
