//go:build !amd64 || purego

package wino

var available = false

func Input16(v, x *float32, stride uintptr)                { panic("wino: no kernels here") }
func InputT16(dx, dv *float32, stride uintptr)             { panic("wino: no kernels here") }
func Output16(y, m *float32, stride uintptr, bias float32) { panic("wino: no kernels here") }
func OutputT16(dm, dy *float32, stride uintptr)            { panic("wino: no kernels here") }
