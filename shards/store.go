package shards

import (
	"context"
	"errors"
	"io"
)

// ErrNotExist is returned (wrapped) by Store methods when an object is absent.
var ErrNotExist = errors.New("object does not exist")

// Store holds the objects of one dataset: a local directory or an S3 prefix.
// Names are relative to the store's root and use '/' as separator.
//
// Its methods read like minio-go's: context first, then the object's name,
// then the data.
type Store interface {
	// Put stores the bytes of r under name. size is the number of bytes, or
	// -1 when unknown (the data is then streamed, never held whole in memory).
	// Put is atomic: no reader sees the object until Put returns nil, and a
	// failed Put leaves no object behind (an existing one is left intact).
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// Open opens the object for reads at any offset (range reads on S3).
	Open(ctx context.Context, name string) (Object, error)
	// Stat returns the object's size in bytes.
	Stat(ctx context.Context, name string) (int64, error)
	// List returns the names of all objects in the store, sorted.
	List(ctx context.Context) ([]string, error)
	// Delete removes the object; deleting an absent object is not an error.
	Delete(ctx context.Context, name string) error
	// String returns the store's URL, without credentials.
	String() string
}

// Object is an open, immutable object of a Store.
type Object interface {
	// ReadAt follows io.ReaderAt, with one addition: a read that fills p
	// returns a nil error even when it ends exactly at the end of the object.
	io.ReaderAt
	io.Closer
	// Size is the object's length in bytes.
	Size() int64
}

// DeferredStore is implemented by stores whose Puts can become visible
// before they are durable (the local store: fsync is what costs there). A
// build puts its shards this way, so that disk write-back overlaps encoding,
// and WriteManifest syncs them all before it puts the manifest, so that a
// durable manifest never names a shard that is not. S3 needs neither.
type DeferredStore interface {
	Store
	// PutDeferred is Put, atomic for readers, durable only after Sync.
	PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error
	// Sync makes every PutDeferred so far durable.
	Sync(ctx context.Context) error
}

// ExclusiveStore is implemented by stores that can create an object only if
// it does not exist yet, atomically (a hard link on disk; If-None-Match: *
// on S3). Builds take a lock object this way, so that two builds into one
// prefix never mix their shards.
type ExclusiveStore interface {
	Store
	// PutIfAbsent is Put, except that it fails with ErrTaken, storing
	// nothing, when the object already exists.
	PutIfAbsent(ctx context.Context, name string, r io.Reader, size int64) error
}
