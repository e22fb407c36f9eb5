package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"certmix/internal/s3test"
	"certmix/shards"
)

func TestMain(m *testing.M) { s3test.Main(m) }

// TestRoundTripIsByteExact builds every input format, written in its exact
// real format (and the real Fashion-MNIST files), to local disk and to a
// real S3 server, shuffled into several shards, and reads every row back:
// each image, label, coarse label and id equals the input's.
func TestRoundTripIsByteExact(t *testing.T) {
	dir := t.TempDir()
	type input struct {
		name  string
		open  func() (Source, error)
		want  srcTestRows
		shard int64 // target shard bytes: several shards per dataset
	}
	var inputs []input

	c10, want10 := cifarTestWrite(t, filepath.Join(mkdir(t, dir, "c10")), false, 3, 700, 1)
	inputs = append(inputs, input{"cifar10", func() (Source, error) { return OpenCIFAR10(c10...) }, want10, 1 << 20})
	c100, want100 := cifarTestWrite(t, filepath.Join(mkdir(t, dir, "c100")), true, 1, 1500, 2)
	inputs = append(inputs, input{"cifar100", func() (Source, error) { return OpenCIFAR100(c100...) }, want100, 1 << 20})

	variants := []npzTestVariant{
		{"stored", "savez", []int{3000, 32, 32, 3}, "<i8", 10, 1},
		{"compressed", "savez_compressed", []int{3000, 32, 32, 3}, "<i8", 10, 2},
	}
	spec, _ := json.Marshal(variants)
	npzTestPython(t, npzTestGoodScript, dir, string(spec))
	for _, v := range variants {
		p := filepath.Join(dir, v.Name)
		inputs = append(inputs, input{"npz-" + v.Name, func() (Source, error) { return OpenNPZ(p+".npz", 10) }, npzTestExpected(t, p), 2 << 20})
	}
	img, lbl, wantIDX := idxTestPair(t, mkdir(t, dir, "idx"), 2000, 28, 28, true, false, 3)
	inputs = append(inputs, input{"idx", func() (Source, error) { return OpenIDX(img, lbl) }, wantIDX, 300 << 10})
	for _, split := range []string{"train", "t10k"} {
		imgs := filepath.Join(fmnist, split+"-images-idx3-ubyte.gz")
		labels := filepath.Join(fmnist, split+"-labels-idx1-ubyte.gz")
		want := srcTestRows{images: idxTestGunzip(t, imgs)[16:]}
		for _, l := range idxTestGunzip(t, labels)[8:] {
			want.labels = append(want.labels, int16(l))
		}
		inputs = append(inputs, input{"fashion-mnist-" + split, func() (Source, error) { return OpenIDX(imgs, labels) }, want, 2 << 20})
	}

	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	for _, in := range inputs {
		for _, where := range []string{"local", "s3"} {
			if where == "s3" && in.name == "fashion-mnist-train" {
				continue // the 10,000 test images make the S3 case; 60,000 more add only time
			}
			t.Run(in.name+"/"+where, func(t *testing.T) {
				ctx := context.Background()
				var store shards.Store
				var err error
				if where == "local" {
					store, err = shards.NewLocal(filepath.Join(t.TempDir(), "ds"))
				} else {
					store, err = shards.NewS3(ctx, s3Config(srv), bucket, in.name)
				}
				if err != nil {
					t.Fatal(err)
				}
				src, err := in.open()
				if err != nil {
					t.Fatal(err)
				}
				defer src.Close()
				info := src.Info()
				m, err := Build(ctx, src, store, Options{Seed: 5, ShardBytes: in.shard, BatchRows: 512, TempDir: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				if len(m.Shards) < 2 {
					t.Errorf("%d shards, want several", len(m.Shards))
				}
				_, rows := readAll(t, store)
				ib := info.Height * info.Width * info.Channels
				if rows.Len() != len(in.want.labels) {
					t.Fatalf("%d rows read back, %d written", rows.Len(), len(in.want.labels))
				}
				seen := make([]bool, rows.Len())
				for i, id := range rows.IDs {
					if seen[id] {
						t.Fatalf("id %d twice", id)
					}
					seen[id] = true
					if rows.Labels[i] != in.want.labels[id] {
						t.Fatalf("row %d (id %d): label %d, input has %d", i, id, rows.Labels[i], in.want.labels[id])
					}
					if in.want.coarse != nil && rows.Coarse[i] != in.want.coarse[id] {
						t.Fatalf("row %d (id %d): coarse %d, input has %d", i, id, rows.Coarse[i], in.want.coarse[id])
					}
					if !bytes.Equal(rows.Image(i, ib), in.want.images[int(id)*ib:int(id+1)*ib]) {
						t.Fatalf("row %d (id %d): image differs from the input", i, id)
					}
				}
			})
		}
	}
}

const fmnist = "/usr/share/datasets/fashion-mnist"

func mkdir(t *testing.T, parts ...string) string {
	p := filepath.Join(parts...)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
