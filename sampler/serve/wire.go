// Package serve streams a sampler's batches to local training processes
// (PyTorch jobs, typically) over a Unix socket or loopback TCP, in a wire
// format that numpy alone can read.
//
// # Protocol (version 1)
//
// The client opens a connection and sends one handshake line: a JSON object
// terminated by '\n', at most 64 KiB:
//
//	{"magic": "certmix", "version": 1, "rank": 0, "state": null}
//
// rank picks the rank's stream (0 <= rank < the server's world size);
// state, if not null, is a sampler State (as received in a frame) to resume
// from. The server answers with one JSON line:
//
//	{"ok": true, "version": 1, "batch": 512, "height": 32, "width": 32,
//	 "channels": 3, "dtype": "uint8", "layout": "NHWC", "step": 0,
//	 "steps_per_epoch": 98, "quotas": [154, 358], "world_size": 1}
//
// or {"ok": false, "error": "..."} and closes the connection. Then frames
// follow, one per batch, until the client closes the connection. A frame is
// a 64-byte little-endian header, then a body of payload_bytes bytes:
//
//	offset size field
//	0      4    magic "CMXF"
//	4      2    version (1)
//	6      1    kind: 0 = batch, 1 = error (body: UTF-8 message; the server then closes)
//	7      1    dtype: 1 = uint8, 2 = float32
//	8      4    batch size B
//	12     2    height H
//	14     2    width W
//	16     2    channels C
//	18     2    layout: 1 = NHWC (uint8), 2 = NCHW (float32, normalised)
//	20     4    reserved (0)
//	24     8    step (int64)
//	32     8    epoch (int64)
//	40     8    payload_bytes (uint64)
//	48     4    state_bytes (uint32)
//	52     12   reserved (0)
//
// The body of a batch frame: images (B*H*W*C values of dtype, in layout),
// labels (B int64), ids (B int64), sources (B uint8: index of the source, 0
// = real), then state_bytes of JSON: the sampler State after this batch,
// which a checkpoint stores to resume exactly after it.
package serve

import (
	"encoding/binary"
	"errors"
	"fmt"

	"certmix/sampler"
)

// Version is the protocol version this package speaks.
const Version = 1

// HeaderSize is the size of a frame header.
const HeaderSize = 64

// MaxHandshake bounds the handshake line.
const MaxHandshake = 64 << 10

// Frame kinds, dtypes and layouts.
const (
	KindBatch = 0
	KindError = 1

	DTypeUint8   = 1
	DTypeFloat32 = 2

	LayoutNHWC = 1
	LayoutNCHW = 2
)

var frameMagic = [4]byte{'C', 'M', 'X', 'F'}

// ErrProtocol is wrapped by errors about malformed handshakes and frames.
var ErrProtocol = errors.New("certmix wire protocol")

// Request is the client's handshake.
type Request struct {
	Magic   string         `json:"magic"`
	Version int            `json:"version"`
	Rank    int            `json:"rank"`
	State   *sampler.State `json:"state"`
}

// Response is the server's answer to a handshake.
type Response struct {
	OK            bool   `json:"ok"`
	Error         string `json:"error,omitempty"`
	Version       int    `json:"version,omitempty"`
	Batch         int    `json:"batch,omitempty"`
	Height        int    `json:"height,omitempty"`
	Width         int    `json:"width,omitempty"`
	Channels      int    `json:"channels,omitempty"`
	DType         string `json:"dtype,omitempty"`
	Layout        string `json:"layout,omitempty"`
	Step          int64  `json:"step"`
	StepsPerEpoch int64  `json:"steps_per_epoch,omitempty"`
	Quotas        []int  `json:"quotas,omitempty"`
	WorldSize     int    `json:"world_size,omitempty"`
}

// Header is a frame header.
type Header struct {
	Kind         uint8
	DType        uint8
	Batch        uint32
	Height       uint16
	Width        uint16
	Channels     uint16
	Layout       uint16
	Step         int64
	Epoch        int64
	PayloadBytes uint64
	StateBytes   uint32
}

// Encode writes h into b (HeaderSize bytes).
func (h *Header) Encode(b []byte) {
	clear(b[:HeaderSize])
	copy(b, frameMagic[:])
	le := binary.LittleEndian
	le.PutUint16(b[4:], Version)
	b[6], b[7] = h.Kind, h.DType
	le.PutUint32(b[8:], h.Batch)
	le.PutUint16(b[12:], h.Height)
	le.PutUint16(b[14:], h.Width)
	le.PutUint16(b[16:], h.Channels)
	le.PutUint16(b[18:], h.Layout)
	le.PutUint64(b[24:], uint64(h.Step))
	le.PutUint64(b[32:], uint64(h.Epoch))
	le.PutUint64(b[40:], h.PayloadBytes)
	le.PutUint32(b[48:], h.StateBytes)
}

// MaxPayload bounds the body a decoder accepts (a batch of 4,096 float32
// images of 256x256x3 is 3 GiB; nothing certmix serves comes close).
const MaxPayload = 4 << 30

// DecodeHeader parses a frame header, refusing one that is malformed or
// would make a reader allocate more than MaxPayload.
func DecodeHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("frame header of %d bytes, want %d: %w", len(b), HeaderSize, ErrProtocol)
	}
	if [4]byte(b[:4]) != frameMagic {
		return h, fmt.Errorf("frame magic %q, want %q: %w", b[:4], frameMagic[:], ErrProtocol)
	}
	le := binary.LittleEndian
	if v := le.Uint16(b[4:]); v != Version {
		return h, fmt.Errorf("frame version %d, want %d: %w", v, Version, ErrProtocol)
	}
	h = Header{Kind: b[6], DType: b[7], Batch: le.Uint32(b[8:]), Height: le.Uint16(b[12:]), Width: le.Uint16(b[14:]),
		Channels: le.Uint16(b[16:]), Layout: le.Uint16(b[18:]), Step: int64(le.Uint64(b[24:])), Epoch: int64(le.Uint64(b[32:])),
		PayloadBytes: le.Uint64(b[40:]), StateBytes: le.Uint32(b[48:])}
	if h.PayloadBytes > MaxPayload || uint64(h.StateBytes) > h.PayloadBytes {
		return h, fmt.Errorf("frame of %d payload bytes (%d of state): %w", h.PayloadBytes, h.StateBytes, ErrProtocol)
	}
	switch h.Kind {
	case KindError:
		return h, nil
	case KindBatch:
	default:
		return h, fmt.Errorf("frame kind %d: %w", h.Kind, ErrProtocol)
	}
	size := map[uint8]uint64{DTypeUint8: 1, DTypeFloat32: 4}[h.DType]
	if size == 0 || (h.Layout != LayoutNHWC && h.Layout != LayoutNCHW) {
		return h, fmt.Errorf("frame dtype %d, layout %d: %w", h.DType, h.Layout, ErrProtocol)
	}
	n := uint64(h.Batch)
	want := n * 17 // labels, ids and sources
	for _, f := range []uint64{n, uint64(h.Height), uint64(h.Width), uint64(h.Channels)} {
		if size > MaxPayload/max(f, 1) {
			return h, fmt.Errorf("frame of %d images %dx%dx%d is larger than %d bytes: %w", n, h.Height, h.Width, h.Channels, uint64(MaxPayload), ErrProtocol)
		}
		size *= f // the bytes of the images, bounded by MaxPayload at every step
	}
	if want += size + uint64(h.StateBytes); want != h.PayloadBytes {
		return h, fmt.Errorf("frame of %d images %dx%dx%d has %d payload bytes, want %d: %w", n, h.Height, h.Width, h.Channels, h.PayloadBytes, want, ErrProtocol)
	}
	return h, nil
}
