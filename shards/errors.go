package shards

import "errors"

// Errors that callers test with errors.Is. Each is wrapped with the object
// or dataset it concerns.
var (
	// ErrNoDataset: the prefix holds no manifest, so it is not a dataset
	// (it may be empty, or hold the shards of an unfinished build).
	ErrNoDataset = errors.New("not a dataset: no manifest.json")
	// ErrExists: the destination already holds a dataset.
	ErrExists = errors.New("destination already holds a dataset")
	// ErrChecksum: bytes read do not match the checksum in the manifest.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrFormat: a manifest or shard does not follow the format.
	ErrFormat = errors.New("malformed dataset")
	// ErrLost: a store acknowledged a Put but does not hold the object; the
	// writer should send it again.
	ErrLost = errors.New("object lost by the store")
	// ErrTaken: PutIfAbsent found the object already there.
	ErrTaken = errors.New("object already exists")
	// ErrVersion: the manifest was written by a newer certmix.
	ErrVersion = errors.New("unsupported manifest version")
)
