package certifier

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestCSVRoundTrip writes results, checks the text, and reads them back bit
// for bit, including infinite and awkward radii.
func TestCSVRoundTrip(t *testing.T) {
	results := append([]Result(nil), handmade...)
	results = append(results,
		Result{Label: 4, Prediction: 4, Radius: 1.0 / 3},
		Result{Label: 5, Prediction: 6, Radius: math.SmallestNonzeroFloat64},
		Result{Label: 9, Prediction: 9, Radius: 36.0 / 255},
		Result{Label: 3, Prediction: 3, Radius: 0.1, IBP: 0.5}, // certified at 0.5 by interval bounds only
	)
	var buf bytes.Buffer
	if err := WriteCSV(&buf, results, 0.5); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	wantLines := map[int]string{
		0:  "index,label,prediction,radius,correct,certified,ibp",
		1:  "0,0,0,1,1,1,0",
		2:  "1,1,1,0.5,1,0,0",
		4:  "3,0,1,0.7,0,1,0",
		6:  "5,2,2,+Inf,1,1,0",
		11: "10,9,9,0.1411764705882353,1,0,0",
		12: "11,3,3,0.1,1,1,0.5",
	}
	if len(lines) != len(results)+1 {
		t.Fatalf("%d lines, want %d", len(lines), len(results)+1)
	}
	for i, want := range wantLines {
		if lines[i] != want {
			t.Errorf("line %d: %q, want %q", i, lines[i], want)
		}
	}
	got, err := ReadCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, results) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, results)
	}
	// Files written before the ibp column still read.
	old, err := ReadCSV(strings.NewReader("index,label,prediction,radius,correct,certified\n0,1,1,0.25,1,0\n"))
	if err != nil || !reflect.DeepEqual(old, []Result{{Label: 1, Prediction: 1, Radius: 0.25}}) {
		t.Errorf("six-column file: %+v, %v", old, err)
	}
}

// TestCSVStreaming writes 10,000 rows through the streaming writer and reads
// them back.
func TestCSVStreaming(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	var buf bytes.Buffer
	cw, err := NewCSVWriter(&buf, 36.0/255)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]Result, 10000)
	for i := range want {
		want[i] = Result{Label: rng.IntN(10), Prediction: rng.IntN(10), Radius: rng.ExpFloat64() / 4}
		if err := cw.Write(i, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Error("10,000-row round trip differs")
	}
}

// failWriter fails every write, to check that write errors surface.
type failWriter struct{}

var errWrite = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

// TestCSVErrors checks malformed files and a failing writer.
func TestCSVErrors(t *testing.T) {
	bad := []struct {
		name, text string
	}{
		{"empty", ""},
		{"wrong header", "i,label,prediction,radius,correct,certified\n"},
		{"index gap", "index,label,prediction,radius,correct,certified\n1,0,0,1,1,1\n"},
		{"bad radius", "index,label,prediction,radius,correct,certified\n0,0,0,x,1,1\n"},
		{"bad label", "index,label,prediction,radius,correct,certified\n0,a,0,1,1,1\n"},
		{"correct disagrees", "index,label,prediction,radius,correct,certified\n0,0,1,1,1,1\n"},
		{"short row", "index,label,prediction,radius,correct,certified\n0,0,1,1\n"},
	}
	for _, tc := range bad {
		if _, err := ReadCSV(strings.NewReader(tc.text)); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := WriteCSV(failWriter{}, handmade, 0.5); !errors.Is(err, errWrite) {
		t.Errorf("failing writer: %v, want %v", err, errWrite)
	}
}

// TestReportJSONRoundTrip writes a report and reads back an equal one.
func TestReportJSONRoundTrip(t *testing.T) {
	rep, err := Summarize(handmade, ReportOptions{Eps: 0.5, Radii: []float64{0.1, 36.0 / 255}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"clean_accuracy": 0.625`, `"certified_accuracy": 0.25`, `"incorrect_certified": 2`, `"radius_curve"`} {
		if !strings.Contains(buf.String(), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
	got, err := ReadReport(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rep) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, rep)
	}
	if _, err := ReadReport(strings.NewReader(`{"n": 1, "unknown": 2}`)); err == nil {
		t.Error("unknown field accepted")
	}
	if err := rep.WriteJSON(failWriter{}); !errors.Is(err, errWrite) {
		t.Errorf("failing writer: %v, want %v", err, errWrite)
	}
}
