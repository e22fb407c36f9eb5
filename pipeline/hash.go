package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"certmix/shards"
)

// hashInputs records each input file's size and SHA-256 (the checksum that
// dataset hubs publish), reading each file once, sequentially.
func hashInputs(ctx context.Context, paths []string) ([]shards.InputFile, error) {
	out := make([]shards.InputFile, 0, len(paths))
	buf := make([]byte, 1<<20)
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		n, err := io.CopyBuffer(h, ctxReader{ctx, f}, buf)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: checksum: %w", p, err)
		}
		out = append(out, shards.InputFile{Path: p, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	return out, nil
}

// ctxReader stops a long read when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
