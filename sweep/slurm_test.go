package sweep

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSbatchArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  Resources
		n    int
		want []string
	}{
		{"defaults", Resources{}, 4, []string{"--parsable", "--job-name=certmix-demo", "--array=0-3", "--output=/s/slurm/1/%a.log"}},
		{"all", Resources{Partition: "gpu", CPUsPerTask: 8, Mem: "32G", Time: "2-00:00:00", GPUs: 1, MaxRunning: 2, Extra: []string{"--account=lab"}}, 1,
			[]string{"--parsable", "--job-name=certmix-demo", "--array=0-0%2", "--output=/s/slurm/1/%a.log", "--partition=gpu",
				"--cpus-per-task=8", "--mem=32G", "--time=2-00:00:00", "--gres=gpu:1", "--account=lab"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SbatchArgs(&Plan{Name: "demo", Slurm: tc.res}, "/s/slurm/1", tc.n)
			if !slices.Equal(got, tc.want) {
				t.Errorf("\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestJobScript runs the job script with bash as Slurm would, with echo as
// the binary: array task i runs cell i.
func TestJobScript(t *testing.T) {
	names := []string{"a_e1_f0_s0", "a_e1_f0.5_g_s0", "it's"}
	script := filepath.Join(t.TempDir(), "job.sh")
	os.WriteFile(script, []byte(JobScript("/bin/echo", "/sweep dir", names)), 0o755)
	for i, n := range names {
		cmd := exec.Command("bash", script)
		cmd.Env = append(os.Environ(), "SLURM_ARRAY_TASK_ID="+string(rune('0'+i)), "SLURM_CPUS_PER_TASK=3", "OPENBLAS_NUM_THREADS=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("task %d: %v\n%s", i, err, out)
		}
		if want := "sweep cell /sweep dir " + n + "\n"; string(out) != want {
			t.Errorf("task %d ran %q, want %q", i, out, want)
		}
	}
	// OpenBLAS gets the task's CPUs.
	printer := filepath.Join(t.TempDir(), "threads")
	os.WriteFile(printer, []byte("#!/bin/sh\necho $OPENBLAS_NUM_THREADS\n"), 0o755)
	os.WriteFile(script, []byte(JobScript(printer, "/d", names)), 0o755)
	threads := exec.Command("bash", script)
	threads.Env = []string{"SLURM_ARRAY_TASK_ID=0", "SLURM_CPUS_PER_TASK=3"}
	if out, err := threads.Output(); err != nil || string(out) != "3\n" {
		t.Errorf("OPENBLAS_NUM_THREADS %q, %v; want 3", out, err)
	}
}

// TestSubmit submits through a fake sbatch that records its arguments.
func TestSubmit(t *testing.T) {
	dir, p := tinySweep(t)
	bin := t.TempDir()
	record := filepath.Join(bin, "args")
	fake := "#!/bin/sh\necho \"$@\" >> " + record + "\necho '42;cluster'\n"
	os.WriteFile(filepath.Join(bin, "sbatch"), []byte(fake), 0o755)
	s := Slurm{Binary: "/opt/certmix", Sbatch: filepath.Join(bin, "sbatch")}
	sub, err := s.Submit(context.Background(), dir, p, p.Cells[1:3])
	if err != nil {
		t.Fatal(err)
	}
	if sub.Job != "42" || !slices.Equal(sub.Cells, []string{p.Cells[1].Name, p.Cells[2].Name}) || sub.Dir != filepath.Join(dir, "slurm", "1") {
		t.Errorf("submission %+v", sub)
	}
	args, _ := os.ReadFile(record)
	want := strings.Join(SbatchArgs(p, sub.Dir, 2), " ") + " " + filepath.Join(sub.Dir, "job.sh") + "\n"
	if string(args) != want {
		t.Errorf("sbatch %q, want %q", args, want)
	}
	// A second submission gets its own directory; both are read back.
	if _, err := s.Submit(context.Background(), dir, p, p.Cells[:1]); err != nil {
		t.Fatal(err)
	}
	subs, err := Submissions(dir)
	if err != nil || len(subs) != 2 || subs[0].Job != "42" || len(subs[1].Cells) != 1 || subs[1].Dir != filepath.Join(dir, "slurm", "2") {
		t.Fatalf("submissions %+v, %v", subs, err)
	}
	// sbatch refusing is an error with its message.
	os.WriteFile(filepath.Join(bin, "sbatch"), []byte("#!/bin/sh\necho 'sbatch: error: invalid partition' >&2\nexit 1\n"), 0o755)
	if _, err := s.Submit(context.Background(), dir, p, p.Cells[:1]); err == nil || !strings.Contains(err.Error(), "invalid partition") {
		t.Fatalf("err = %v, want sbatch's message", err)
	}
}

func TestParseSqueue(t *testing.T) {
	got, err := parseSqueue("0|COMPLETED\n1|RUNNING\n2|PENDING\nN/A|RUNNING\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != "COMPLETED" || got[1] != "RUNNING" || got[2] != "PENDING" {
		t.Errorf("%v", got)
	}
	if _, err := parseSqueue("garbage"); err == nil {
		t.Error("a line without | parsed")
	}
}
