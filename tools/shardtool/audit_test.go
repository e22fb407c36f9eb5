package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"certmix/audit"
	"certmix/internal/s3test"
	"certmix/shards"
)

// The audit end to end, as a user runs it: Fashion-MNIST test images
// against training images, split in two parts and merged, then the
// training set rebuilt without the flagged rows.
func TestAuditFashionMNIST(t *testing.T) {
	if _, err := os.Stat(fmnist); err != nil {
		t.Fatalf("Fashion-MNIST not installed at %s: %v (task deps:apt installs Debian's dataset-fashion-mnist; task test runs it)", fmnist, err)
	}
	dir := t.TempDir()
	test, train := filepath.Join(dir, "test"), filepath.Join(dir, "train")
	ok(t, nil, "build", "--in", fmnist, "--split", "test", "--take", "1000", "--seed", "1", "--out", test)
	ok(t, nil, "build", "--in", fmnist, "--split", "train", "--take", "8000", "--seed", "1", "--out", train)

	// Thresholds loose enough that this small sample flags some pairs.
	whole := filepath.Join(dir, "whole")
	got := ok(t, nil, "audit", "--against", test, "--out", whole, "--max-ratio", "0.4", train)
	for _, want := range []string{"searched 8000 rows for 1000 test images", "test images flagged", "wrote " + filepath.Join(whole, "pairs-1.png")} {
		if !strings.Contains(got, want) {
			t.Errorf("audit output lacks %q:\n%s", want, got)
		}
	}
	for _, f := range []string{"result.json", "audit.json", "flagged.txt", "hist-1.png", "pairs-1.png", "exclude-ids-1.txt"} {
		if st, err := os.Stat(filepath.Join(whole, f)); err != nil || st.Size() == 0 {
			t.Errorf("output %s: %v", f, err)
		}
	}

	parts := filepath.Join(dir, "parts")
	for _, p := range []string{"2/2", "1/2"} {
		ok(t, nil, "audit", "--against", test, "--part", p, "--out", parts, train)
	}
	merged := filepath.Join(dir, "merged")
	ok(t, nil, "audit", "merge", "--out", merged, "--max-ratio", "0.4", filepath.Join(parts, "part-1-of-2.json"), filepath.Join(parts, "part-2-of-2.json"))
	for _, f := range []string{"flagged.txt", "exclude-ids-1.txt"} {
		a, _ := os.ReadFile(filepath.Join(whole, f))
		b, _ := os.ReadFile(filepath.Join(merged, f))
		if string(a) != string(b) || len(a) == 0 {
			t.Errorf("%s of the merged parts differs from the unsplit audit's:\n%s\nvs\n%s", f, b, a)
		}
	}

	// Rebuild the training set without the flagged rows.
	exclude := filepath.Join(whole, "exclude-ids-1.txt")
	var ids []int64
	data, _ := os.ReadFile(exclude)
	for _, line := range strings.Split(string(data), "\n") {
		if id, err := strconv.ParseInt(line, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		t.Fatal("nothing flagged: the rebuild below checks nothing")
	}
	clean := filepath.Join(dir, "clean")
	ok(t, nil, "build", "--in", fmnist, "--split", "train", "--take", "8000", "--seed", "1", "--exclude-ids", exclude, "--out", clean)
	var m shards.Manifest
	if err := json.Unmarshal([]byte(ok(t, nil, "inspect", "--json", clean)), &m); err != nil {
		t.Fatal(err)
	}
	if m.Rows != 8000-int64(len(ids)) || !slices.Equal(m.Provenance.Excluded, ids) {
		t.Errorf("rebuilt set: %d rows and excluded %v, want %d rows and excluded %v", m.Rows, m.Provenance.Excluded, 8000-len(ids), ids)
	}
	// The clean set has none of the flagged rows left.
	again := filepath.Join(dir, "again")
	ok(t, nil, "audit", "--against", test, "--out", again, "--max-ratio", "0.4", clean)
	data, _ = os.ReadFile(filepath.Join(again, "exclude-ids-1.txt"))
	for _, line := range strings.Split(string(data), "\n") {
		if id, err := strconv.ParseInt(line, 10, 64); err == nil && slices.Contains(ids, id) {
			t.Errorf("row %d, excluded, is still in the rebuilt set", id)
		}
	}
}

func TestAuditBadInput(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nothing-here")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"audit", "--out", dir, missing}, "want --against TEST"},
		{[]string{"audit", "--against", missing, "--out", dir, missing}, "nothing-here"},
		{[]string{"audit", "--against", missing, "--out", dir, "--part", "3/2", missing}, `part "3/2": want i/n with 1 ≤ i ≤ n`},
		{[]string{"audit", "--against", missing, "--out", dir, "--part", "0/2", missing}, `part "0/2"`},
		{[]string{"audit", "--against", missing, "--out", dir, "--part", "half", missing}, `part "half"`},
		{[]string{"audit", "--against", missing, "--out", dir, "--normalize", "zscore", missing}, `normalisation "zscore": want none, mean or unit`},
		{[]string{"audit", "merge", "--out", dir, filepath.Join(dir, "part-1-of-2.json")}, "part-1-of-2.json: no such file"},
		{[]string{"audit", "merge", "--out", dir}, "at least one result file"},
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version": 1, "stuff": 2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		args []string
		want string
	}{[]string{"audit", "merge", "--out", dir, bad}, "bad.json: not a result file of shardtool audit"})
	for _, c := range cases {
		r := run(t, nil, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("shardtool %s: exit %d, stderr %q; want an error containing %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}

// An audit against a dataset on S3 finds what it finds against the same
// dataset on local disk.
func TestAuditS3(t *testing.T) {
	if _, err := os.Stat(fmnist); err != nil {
		t.Fatalf("Fashion-MNIST not installed at %s: %v (task deps:apt installs Debian's dataset-fashion-mnist; task test runs it)", fmnist, err)
	}
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	env := []string{"AWS_ENDPOINT_URL=" + srv.Endpoint, "AWS_ACCESS_KEY_ID=" + srv.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=" + srv.Region}
	dir := t.TempDir()
	test, local, url := filepath.Join(dir, "test"), filepath.Join(dir, "train"), "s3://"+bucket+"/fmnist/train"
	ok(t, nil, "build", "--in", fmnist, "--split", "test", "--take", "500", "--seed", "2", "--out", test)
	for _, out := range []string{local, url} {
		ok(t, env, "build", "--in", fmnist, "--split", "train", "--take", "6000", "--seed", "2", "--shard-mib", "1", "--batch-rows", "1000", "--out", out)
	}
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	ok(t, nil, "audit", "--against", test, "--out", a, "--max-ratio", "0.5", local)
	got := ok(t, env, "audit", "--against", test, "--out", b, "--max-ratio", "0.5", url)
	if strings.Contains(got, srv.SecretKey) {
		t.Fatalf("the S3 secret appears in the output")
	}
	ra, err := audit.ReadResult(filepath.Join(a, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := audit.ReadResult(filepath.Join(b, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ra.Datasets[0].Neighbours, rb.Datasets[0].Neighbours) || !reflect.DeepEqual(ra.Datasets[0].Pairs, rb.Datasets[0].Pairs) {
		t.Errorf("the audit against S3 found other neighbours than against local disk")
	}
	if rb.Datasets[0].URL != url {
		t.Errorf("result names dataset %q, want %q", rb.Datasets[0].URL, url)
	}
}
