//go:build amd64 && !purego

package wino

import "golang.org/x/sys/cpu"

var available = cpu.X86.HasAVX2

// Input16 writes Bᵀ d B of the 64 tiles d of the plane x into v.
//
//go:noescape
func Input16(v, x *float32, stride uintptr)

// InputT16 writes into the plane dx the adjoint of Input16 applied to dv.
//
//go:noescape
func InputT16(dx, dv *float32, stride uintptr)

// Output16 writes Aᵀ M A + bias of the 64 tiles of m into the plane y.
//
//go:noescape
func Output16(y, m *float32, stride uintptr, bias float32)

// OutputT16 writes A dY Aᵀ of the 64 tiles of the plane dy into dm.
//
//go:noescape
func OutputT16(dm, dy *float32, stride uintptr)
