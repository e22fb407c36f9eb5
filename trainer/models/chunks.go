package models

// Chunks calls f on consecutive ranges [lo, lo+rows) of n images, each of
// at most batch rows, so that evaluating any number of images fits buffers
// sized for one training batch.
func Chunks(n, batch int, f func(lo, rows int)) {
	for lo := 0; lo < n; lo += batch {
		f(lo, min(batch, n-lo))
	}
}
